"""Rotation-preserving SFT against plain SFT, and checkpoint selection by rotation (Step 11).

**Ablation.** A study may hold SFT runs of several variants: plain SFT (init ``base``) and SFT
with the rotation regulariser on (init ``base+rotreg_<variant>_k<k>_lam<λ>``, see
:func:`sweeps.runs.rotation_variant`), each over the same seeds (the same base, data order and
evaluation sets). Per variant and seed the quantities are those of plain SFT
(:func:`curves.sft_seeds`: the OOD max, OOD and ID at the end, the cross-fitted drop) plus the
rotation at the end (the online monitor's ``rotation/angle_mean`` at its last step). Each variant
is compared with plain SFT **paired by seed**: the per-seed differences (variant − plain) get a
percentile bootstrap CI over seeds (:func:`bootstrap.bootstrap_ci`) and a sign-flip test; the
effect is called positive or negative only when the CI excludes 0, else "none detected". Mean
curves over seeds (OOD, ID, rotation; with CIs) per variant go to ``ablation_curves``.

**Checkpoint selection by rotation** (every SFT variant with monitor data): per seed, the rule
:func:`roles.select_by_rotation` picks a checkpoint from the rotation curve alone; its OOD
success is compared with the true OOD maximum of that run (gap = OOD(picked) − max_t OOD(t),
≤ 0; 0 = it found the peak), with a CI over seeds. Two reference rules are scored the same way:
the last checkpoint (what plain SFT hands over) and the ID peak (uses ID data, still no OOD).
The maximum of a noisy curve sits above the true peak, so every gap is biased downwards by
evaluation noise, equally for the three rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sweeps.analysis.bootstrap import paired_differences, sign_flip_test
from sweeps.analysis.roles import ROTATION, SELECT_FRACTION, select_by_rotation
from sweeps.analysis.tables import ID, OOD, SFT, Study
from sweeps.runs import split_variant

NAN = float("nan")
PLAIN = "base"
COMPARED = (
    ("ood_max_value", "max_value"),
    ("ood_end_value", "end_value"),
    ("id_end_value", "id_end"),
    ("ood_drop_crossfit", "drop_crossfit"),
    ("rotation_end", "rotation_end"),
)


def sft_inits(study: Study, model: str, task: str) -> list[str]:
    """The SFT inits (plain first, then the variants by name) with finished runs in the cell."""
    inits = {k.init for k in study.keys(SFT) if (k.model, k.task) == (model, task)}
    return sorted(inits, key=lambda i: (i != PLAIN, i))


def rotation_end(study: Study, model: str, task: str, init: str, seed: int) -> float:
    from sweeps.analysis.tables import RunKey

    series = study.metrics.get(RunKey(SFT, model, task, init, seed), {}).get(ROTATION, {})
    finite = {s: v for s, v in series.items() if math.isfinite(v)}
    return finite[max(finite)] if finite else NAN


def effect(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no CI"
    return "positive (CI > 0)" if lo > 0 else "negative (CI < 0)" if hi < 0 else "none detected (CI spans 0)"


def compare(opts: Any, cell: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per variant: the mean of each quantity with its CI, and for each variant ≠ plain the paired
    difference from plain SFT with its CI and sign-flip p-values."""
    from sweeps.analysis.curves import ci_row

    out = []
    plain = {r["seed"]: r for r in rows.get(PLAIN, [])}
    for init, seeds in rows.items():
        scope = {**cell, "init": init, "variant": split_variant(init)[1] or "plain"}
        for metric, col in COMPARED:
            out.append(
                {**ci_row(opts, {**scope, "comparison": "value"}, metric, [r[col] for r in seeds]), "effect": ""}
            )
            if init == PLAIN or not plain:
                continue
            common = sorted(set(plain) & {r["seed"] for r in seeds})
            mine = {r["seed"]: r for r in seeds}
            d = paired_differences([mine[s][col] for s in common], [plain[s][col] for s in common])
            row = ci_row(opts, {**scope, "comparison": "minus plain (paired)"}, metric, list(d))
            test = sign_flip_test(d, opts.n_resamples, opts.seed)
            out.append(
                {**row, "p_below": test["p_below"], "p_above": test["p_above"], "effect": effect(row["lo"], row["hi"])}
            )
    return out


def selection(
    opts: Any, study: Study, cell: dict[str, Any], init: str, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-seed rows, summary rows) of the three checkpoint rules for the runs of ``init``."""
    from sweeps.analysis.curves import ci_row

    seeds = []
    for key in study.keys(SFT):
        if (key.model, key.task, key.init) != (cell["model"], cell["task"], init):
            continue
        steps, oods = study.curve(key, OOD)
        angle = study.metrics[key].get(ROTATION, {})
        if not steps or not any(math.isfinite(v) for v in angle.values()):
            continue
        ood = dict(zip(steps, oods))
        ids = study.metrics[key].get(ID, {})
        picks = {
            "rotation": select_by_rotation(angle, steps, fraction),
            "last": steps[-1],
            "id_peak": max(
                (s for s in steps if math.isfinite(ids.get(s, NAN))), key=lambda s: (ids[s], -s), default=steps[-1]
            ),
        }
        best = max(oods)
        row = {
            **cell,
            "init": init,
            "seed": key.seed,
            "ood_peak_step": steps[int(np.argmax(oods))],
            "ood_peak_value": best,
        }
        for rule, step in picks.items():
            row[f"{rule}_step"], row[f"{rule}_ood"], row[f"{rule}_gap"] = (
                step,
                ood.get(step, NAN),
                ood.get(step, NAN) - best,
            )
        row["rotation_at_pick"] = angle.get(picks["rotation"], 0.0 if picks["rotation"] == 0 else NAN)
        seeds.append(row)
    summary = []
    for rule in ("rotation", "last", "id_peak"):
        note = f"the last checkpoint with rotation <= {fraction:g} x its end value" if rule == "rotation" else ""
        summary.append(
            ci_row(
                opts, {**cell, "init": init, "rule": rule}, "gap_to_ood_peak", [r[f"{rule}_gap"] for r in seeds], note
            )
        )
        summary.append(
            ci_row(opts, {**cell, "init": init, "rule": rule}, "picked_step", [float(r[f"{rule}_step"]) for r in seeds])
        )
    if seeds:
        d = paired_differences([r["rotation_gap"] for r in seeds], [r["last_gap"] for r in seeds])
        summary.append(
            ci_row(
                opts,
                {**cell, "init": init, "rule": "rotation - last"},
                "gap_difference",
                list(d),
                "> 0: the rotation rule lands closer to the OOD peak than the last checkpoint",
            )
        )
    return seeds, summary


def analyse_cell(res: Any, opts: Any, study: Study, model: str, task: str, fraction: float = SELECT_FRACTION) -> None:
    """Add the ablation and selection tables of one (model, task) to ``res`` (nothing when the
    study has one plain SFT variant and no monitor data)."""
    from sweeps.analysis.curves import mean_curve, sft_seeds
    from sweeps.analysis.tables import RunKey

    cell = {"model": model, "task": task}
    inits = sft_inits(study, model, task)
    if len(inits) > 1:
        rows = {}
        for init in inits:
            rows[init] = sft_seeds(study, model, task, opts.flat_tolerance, init)
            for r in rows[init]:
                r["rotation_end"] = rotation_end(study, model, task, init, r["seed"])
                res.ablation_seeds.append({"init": init, **r})
        res.ablation += compare(opts, cell, rows)
        for init in inits:
            keys = [RunKey(SFT, model, task, init, r["seed"]) for r in rows[init]]
            for metric in (OOD, ID, ROTATION):
                res.ablation_curves += [{**cell, "init": init, **r} for r in mean_curve(opts, study, keys, metric)]
    for init in inits:
        seeds, summary = selection(opts, study, cell, init, fraction)
        res.selection_seeds += seeds
        res.selection += summary if seeds else []
