"""Per-seed quantities of the paper's claims, and their confidence intervals across seeds.

Per seed, from the SFT run's OOD success curve (PAPER.md section 5):

- **SFT_MaxOOD**: the largest OOD success and its checkpoint (the earliest on ties, as
  ``roles.ood_peak``). It is called a **peak** only if the curve rises and then falls: the
  curve is not flat (max - min > ``tol``) and the last checkpoint is more than ``tol`` below
  the max (so a max at the last checkpoint, or a plateau, is "no peak"). With fewer than two
  finite checkpoints there is no peak either. "No peak" keeps the max's value (SFT_MaxOOD is
  still defined) but gives no peak step, and says why.
- **SFT_End**: the value at the last checkpoint; **ID at the peak**: ID success at the peak step.

Per seed and RL init checkpoint t (an RL run of stage ``grpo``/``ppo``/... from ``sft-step=t``):
ΔOOD = OOD(RL end) - OOD(SFT at t), ΔID likewise, where RL end is the RL run's last evaluated
step and SFT at t is the SFT run's evaluation at t (the RL run's step-0 evaluation of the same
weights when the SFT run has none). The **recovery ratio** is (RL_End - SFT(t)) / (SFT_MaxOOD -
SFT(t)): the share of the OOD lost by t that RL won back; at t = SFT_End it is the paper's
(RL_End - SFT_End)/(SFT_MaxOOD - SFT_End). When the denominator is <= ``tol`` (nothing was lost
at t) it is nan, with the reason. RL **exceeds the peak** when OOD(RL end) > SFT_MaxOOD.

Across seeds every mean gets a seeded bootstrap CI (``bootstrap.bootstrap_ci``). The **recovery
window** is the set of init checkpoints whose ΔOOD CI lies above 0 (above ``tol``), with its
first and last step; "RL never surpasses the SFT peak" is tested on the per-seed differences
max_t RL_End(t) - SFT_MaxOOD with a paired CI and a sign-flip test. ``sweeps.analysis.synthetic``
is the positive control: studies with a planted peak and window that the analysis must find.

Rotation ↔ OOD (PAPER.md section 8) is :mod:`sweeps.analysis.rotation`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.analysis.bootstrap import bootstrap_ci, paired_differences, sign_flip_test
from sweeps.analysis.rotation import correlations, rotation_points
from sweeps.analysis.tables import ID, OOD, SFT, RunKey, Study
from sweeps.runs import layout

NAN = float("nan")


@dataclass
class Options:
    confidence: float = 0.95
    n_resamples: int = 9999
    seed: int = 0
    method: str = "percentile"
    flat_tolerance: float = 1e-6
    select_fraction: float = 0.5  # roles.select_by_rotation's fraction (analysis.select_fraction)

    def ci(self, values: list[float]) -> tuple[float, float, float]:
        return bootstrap_ci(values, np.mean, self.confidence, self.n_resamples, self.seed, self.method)


# --- per seed: SFT ----------------------------------------------------------------------------------
def find_peak(steps: list[int], values: list[float], tol: float) -> dict[str, Any]:
    """Max, end and peak of one OOD curve (finite points, by step); see the module doc."""
    if not steps:
        return {
            "max_step": None,
            "max_value": NAN,
            "end_step": None,
            "end_value": NAN,
            "peak_step": None,
            "peak_value": NAN,
            "no_peak": "no evaluated checkpoints",
        }
    i = int(np.argmax(values))  # first index of the max: earliest on ties
    out = {
        "max_step": steps[i],
        "max_value": values[i],
        "end_step": steps[-1],
        "end_value": values[-1],
        "peak_step": steps[i],
        "peak_value": values[i],
        "no_peak": "",
    }
    if len(steps) < 2:
        reason = "a single checkpoint"
    elif max(values) - min(values) <= tol:
        reason = f"flat curve (max - min <= {tol:g})"
    elif values[i] - values[-1] <= tol:
        reason = "no decline after the max (the max is at or level with the last checkpoint)"
    else:
        return out
    return {**out, "peak_step": None, "peak_value": NAN, "no_peak": reason}


def crossfit_drop(run: Path, split: str = "ood") -> float:
    """Peak-minus-end of one run's success curve, with the peak chosen and measured on different
    items, so that evaluation noise cannot make a decline.

    ``max_t s(t) - s(end)`` over a noisy curve is biased upwards: the max of many noisy points
    sits above the true curve even when nothing declines. Here the evaluation items are split by
    parity; the peak checkpoint is picked on the even items and the drop ``s(peak) - s(end)`` is
    measured on the odd items, and vice versa; the result is the mean of the two. Under a flat
    true curve its expectation is 0. Reads ``ckpt/step=*/episodes_<split>.jsonl``; NaN when
    fewer than two checkpoints have them.
    """
    curves: list[tuple[int, np.ndarray, np.ndarray]] = []
    for step, ckpt in layout.checkpoints(run):
        f = ckpt / f"episodes_{split}.jsonl"
        if not f.is_file():
            continue
        items = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        ok = np.array([bool(r["success"]) for r in items], float)
        idx = np.array([int(r["item"]) for r in items])
        if ok.size:
            curves.append((step, ok[idx % 2 == 0], ok[idx % 2 == 1]))
    if len(curves) < 2:
        return NAN
    curves.sort(key=lambda c: c[0])
    means = np.array([[c[1].mean() if c[1].size else NAN, c[2].mean() if c[2].size else NAN] for c in curves])  # [T, 2]
    drops = []
    for pick, measure in ((0, 1), (1, 0)):
        t = int(np.nanargmax(means[:, pick]))
        drops.append(means[t, measure] - means[-1, measure])
    return float(np.mean(drops))


def sft_seeds(study: Study, model: str, task: str, tol: float, init: str = "base") -> list[dict[str, Any]]:
    """One row per finished SFT seed of the SFT runs with init ``init`` (plain SFT: ``base``):
    peak, max, end, ID at the peak/end, and the cross-fitted OOD drop (``crossfit_drop``)."""
    rows = []
    for key in study.keys(SFT):
        if (key.model, key.task, key.init) != (model, task, init):
            continue
        peak = find_peak(*study.curve(key, OOD), tol)
        ids = study.metrics[key].get(ID, {})
        at_peak = peak["peak_step"] if peak["peak_step"] is not None else peak["max_step"]
        run = layout.format(study.root, key)
        rows.append(
            {
                "model": model,
                "task": task,
                "seed": key.seed,
                **peak,
                "id_at_peak": ids.get(at_peak, NAN),
                "id_end": ids.get(peak["end_step"], NAN),
                "max_minus_end": peak["max_value"] - peak["end_value"],
                "drop_crossfit": crossfit_drop(run),
            }
        )
    return rows


# --- per seed: RL -----------------------------------------------------------------------------------
def _at_init(study: Study, sft: RunKey, rl: RunKey, metric: str) -> tuple[float, str]:
    v = study.metrics.get(sft, {}).get(metric, {}).get(rl.init_step, NAN)
    if math.isfinite(v):
        return v, "sft"
    v = study.metrics[rl].get(metric, {}).get(0, NAN)
    return (v, "rl step 0") if math.isfinite(v) else (NAN, "no evaluation at the init")


def recovery_ratio(rl_end: float, at_init: float, sft_max: float, tol: float) -> tuple[float, str]:
    """(RL_End - SFT(t)) / (SFT_MaxOOD - SFT(t)), or nan and the reason when the denominator <= tol."""
    den = sft_max - at_init
    if not (math.isfinite(den) and math.isfinite(rl_end)):
        return NAN, "a non-finite input"
    if den <= tol:
        return NAN, f"no OOD lost at this init (SFT_MaxOOD - SFT(t) = {den:.3g} <= {tol:g})"
    return (rl_end - at_init) / den, ""


def rl_seeds(
    study: Study, stage: str, model: str, task: str, sft: list[dict[str, Any]], tol: float
) -> list[dict[str, Any]]:
    """One row per finished RL run (init x seed) of ``stage`` with its ΔOOD, ΔID, ratio, peak flag."""
    by_seed = {r["seed"]: r for r in sft}
    end_step = {r["seed"]: r["end_step"] for r in sft}
    rows = []
    for key in study.keys(stage):
        if (key.model, key.task) != (model, task) or key.init_step is None or key.seed not in by_seed:
            continue
        s = by_seed[key.seed]
        sft_key = RunKey(SFT, model, task, "base", key.seed)
        ood0, src = _at_init(study, sft_key, key, OOD)
        id0, _ = _at_init(study, sft_key, key, ID)
        steps, oods = study.curve(key, OOD)
        end = oods[-1] if oods else NAN
        id_end = study.metrics[key].get(ID, {}).get(steps[-1], NAN) if steps else NAN
        ratio, why = recovery_ratio(end, ood0, s["max_value"], tol)
        rows.append(
            {
                "stage": stage,
                "model": model,
                "task": task,
                "init": key.init,
                "init_step": key.init_step,
                "seed": key.seed,
                "is_sft_end": key.init_step == end_step[key.seed],
                "sft_ood_at_init": ood0,
                "init_source": src,
                "rl_end_step": steps[-1] if steps else None,
                "rl_end_ood": end,
                "rl_end_id": id_end,
                "d_ood": end - ood0,
                "d_id": id_end - id0,
                "recovery_ratio": ratio,
                "ratio_note": why,
                "sft_max_ood": s["max_value"],
                "exceeds_peak": bool(end > s["max_value"]),
            }
        )
    return rows


# --- across seeds -------------------------------------------------------------------------------
def ci_row(opts: Options, scope: dict[str, Any], metric: str, values: list[float], note: str = "") -> dict[str, Any]:
    """A summary row: estimate [lo, hi] of the mean of ``values`` and why a CI is missing."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    est, lo, hi = opts.ci(finite)
    if len(finite) < 2:
        note = "; ".join(filter(None, [note, f"CI unavailable ({len(finite)} seed{'s' * (len(finite) != 1)})"]))
    elif not math.isfinite(lo):
        note = "; ".join(filter(None, [note, "CI unavailable (degenerate resamples)"]))
    return {**scope, "metric": metric, "estimate": est, "lo": lo, "hi": hi, "n": len(finite), "note": note}


def sft_summary(opts: Options, sft: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not sft:
        return []
    scope = {"model": sft[0]["model"], "task": sft[0]["task"], "stage": SFT, "init": ""}
    peaks = [r for r in sft if r["peak_step"] is not None]
    none = f"{len(sft) - len(peaks)} of {len(sft)} seeds without a peak" if len(peaks) < len(sft) else ""
    col = lambda rows, k: [float(r[k]) if r[k] is not None else NAN for r in rows]  # noqa: E731
    return [
        ci_row(opts, scope, "ood_peak_step", col(peaks, "peak_step"), none),
        ci_row(opts, scope, "ood_peak_value", col(peaks, "peak_value"), none),
        ci_row(opts, scope, "ood_max_value", col(sft, "max_value")),
        ci_row(opts, scope, "ood_end_value", col(sft, "end_value")),
        ci_row(
            opts,
            scope,
            "ood_max_minus_end",
            col(sft, "max_minus_end"),
            "biased upwards by evaluation noise (max of a noisy curve); see ood_drop_crossfit",
        ),
        ci_row(
            opts,
            scope,
            "ood_drop_crossfit",
            col(sft, "drop_crossfit"),
            "peak chosen on half the items, drop measured on the other half",
        ),
        ci_row(opts, scope, "id_at_peak", col(peaks, "id_at_peak"), none),
        ci_row(opts, scope, "id_end_value", col(sft, "id_end")),
    ]


def rl_summary(opts: Options, rl: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per init: mean RL end, ΔOOD, ΔID and recovery ratio with CIs, and the share above the peak."""
    out = []
    for init in sorted({r["init"] for r in rl}):
        rows = [r for r in rl if r["init"] == init]
        scope = {
            "model": rows[0]["model"],
            "task": rows[0]["task"],
            "stage": rows[0]["stage"],
            "init": init,
            "init_step": rows[0]["init_step"],
            "is_sft_end": all(r["is_sft_end"] for r in rows),
        }
        ratio_notes = "; ".join(sorted({r["ratio_note"] for r in rows if r["ratio_note"]}))
        out += [
            ci_row(opts, scope, "rl_end_ood", [r["rl_end_ood"] for r in rows]),
            ci_row(opts, scope, "rl_end_id", [r["rl_end_id"] for r in rows]),
            ci_row(opts, scope, "d_ood", [r["d_ood"] for r in rows]),
            ci_row(opts, scope, "d_id", [r["d_id"] for r in rows]),
            ci_row(opts, scope, "recovery_ratio", [r["recovery_ratio"] for r in rows], ratio_notes),
            ci_row(opts, scope, "exceeds_peak_fraction", [float(r["exceeds_peak"]) for r in rows]),
        ]
    return out


def recovery_window(summary: list[dict[str, Any]], tol: float = 0.0) -> dict[str, Any]:
    """Init checkpoints whose ΔOOD CI lies above 0 (``lo > tol``), with bounds and contiguity;
    ``positive_estimate``: those whose mean ΔOOD is above ``tol`` (a mean of seeds that cancel
    is 0 up to rounding, e.g. 5e-18, and is not a gain)."""
    rows = sorted((r for r in summary if r["metric"] == "d_ood"), key=lambda r: r["init_step"])
    inside = [r["init_step"] for r in rows if math.isfinite(r["lo"]) and r["lo"] > tol]
    positive = [r["init_step"] for r in rows if math.isfinite(r["estimate"]) and r["estimate"] > tol]
    no_ci = [r["init_step"] for r in rows if not math.isfinite(r["lo"])]
    order = [r["init_step"] for r in rows]
    idx = [order.index(s) for s in inside]
    return {
        "inits": order,
        "window": inside,
        "lo_step": min(inside) if inside else None,
        "hi_step": max(inside) if inside else None,
        "contiguous": bool(inside) and idx == list(range(idx[0], idx[-1] + 1)),
        "positive_estimate": positive,
        "inits_without_ci": no_ci,
    }


def peak_test(opts: Options, rl: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired CI and sign-flip test of max_t RL_End(t) - SFT_MaxOOD per seed ("RL never beats the peak")."""
    best: dict[int, float] = {}
    peak: dict[int, float] = {}
    for r in rl:
        if math.isfinite(r["rl_end_ood"]):
            best[r["seed"]] = max(best.get(r["seed"], -math.inf), r["rl_end_ood"])
            peak[r["seed"]] = r["sft_max_ood"]
    seeds = sorted(best)
    d = paired_differences([best[s] for s in seeds], [peak[s] for s in seeds])
    row = ci_row(
        opts, {k: rl[0][k] for k in ("model", "task", "stage")} if rl else {}, "best_rl_end_minus_sft_peak", list(d)
    )
    test = sign_flip_test(d, opts.n_resamples, opts.seed)
    return {
        **row,
        "init": "all",
        "p_below": test["p_below"],
        "p_above": test["p_above"],
        "exact": test["exact"],
        "never_surpasses": bool(len(d) and np.all(d <= 0)),
    }


def mean_curve(
    opts: Options, study: Study, keys: list[RunKey], metric: str, with_ci: bool = True
) -> list[dict[str, Any]]:
    """Per step: mean over seeds of ``metric`` (finite values) with a bootstrap CI."""
    by_step: dict[int, list[float]] = {}
    for key in keys:
        for s, v in zip(*study.curve(key, metric)):
            by_step.setdefault(s, []).append(v)
    out = []
    for step in sorted(by_step):
        vals = by_step[step]
        est, lo, hi = opts.ci(vals) if with_ci else (float(np.mean(vals)), NAN, NAN)
        out.append({"metric": metric, "step": step, "mean": est, "lo": lo, "hi": hi, "n": len(vals)})
    return out


# --- the whole study ----------------------------------------------------------------------------
@dataclass
class Results:
    sft_seeds: list[dict[str, Any]]
    rl_seeds: list[dict[str, Any]]
    summary: list[dict[str, Any]]  # estimate [lo, hi] rows
    windows: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    curves: list[dict[str, Any]]  # mean curves over seeds (SFT metrics)
    points: list[dict[str, Any]]  # rotation ↔ OOD-drop points
    correlations: list[dict[str, Any]]
    notes: list[str]
    ablation: list[dict[str, Any]] = field(default_factory=list)  # SFT variants vs plain SFT (sweeps.analysis.ablation)
    ablation_seeds: list[dict[str, Any]] = field(default_factory=list)
    ablation_curves: list[dict[str, Any]] = field(default_factory=list)
    selection: list[dict[str, Any]] = field(default_factory=list)  # checkpoint choice by rotation vs the OOD peak
    selection_seeds: list[dict[str, Any]] = field(default_factory=list)


def analyse(study: Study, opts: Options) -> Results:
    """Every table of the report for every (model, task) of the study and every RL stage."""
    res = Results(*([] for _ in range(9)))
    for model, task in study.cells():
        cell = {"model": model, "task": task}
        sft = sft_seeds(study, model, task, opts.flat_tolerance)
        res.sft_seeds += sft
        res.summary += sft_summary(opts, sft)
        keys = [k for k in study.keys(SFT) if (k.model, k.task, k.init) == (model, task, "base")]
        errs = sorted({m for k in keys for m in study.metrics[k] if "/err/" in m})
        for metric in (ID, OOD, *errs):
            res.curves += [{**cell, **r} for r in mean_curve(opts, study, keys, metric, with_ci=metric in (ID, OOD))]
        for stage in study.rl_stages():
            rl = rl_seeds(study, stage, model, task, sft, opts.flat_tolerance)
            if not rl:
                continue
            res.rl_seeds += rl
            summary = rl_summary(opts, rl)
            res.summary += summary
            res.windows.append({"stage": stage, **cell, **recovery_window(summary, opts.flat_tolerance)})
            res.tests.append(peak_test(opts, rl))
        points, ref = rotation_points(study, model, task, sft)
        res.points += points
        if points:
            res.correlations += correlations(opts, points, ref)
        else:
            res.notes.append(
                f"{model}/{task}: rotation↔OOD unavailable (no spectral/summary.csv with a usable reference)"
            )
        if len(sft) == 1:
            res.notes.append(f"{model}/{task}: one seed: confidence intervals are unavailable, not estimated")
        from sweeps.analysis import ablation

        ablation.analyse_cell(res, opts, study, model, task, opts.select_fraction)
    return res
