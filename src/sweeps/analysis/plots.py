"""Figures of the analysis (matplotlib, Agg backend, PNG), drawn from :class:`curves.Results`.

One figure per (model, task) unless stated:

- ``sft_*``: ID and OOD success vs SFT step, mean over seeds with the bootstrap CI band, the
  seeds' OOD curves faintly, and the OOD peak (mean step with its CI as a shaded span);
- ``recovery_<algo>_*``: the SFT OOD curve with the OOD of RL-from-checkpoint at each init
  step (mean and CI), the recovery window shaded, SFT_MaxOOD as a dashed line;
- ``rotation_*`` (spectral data only): rotation scalars and the singular-value drift control vs
  the OOD drop from the peak, one colour per seed, with the least-squares line;
- ``layers_*`` (spectral data only): mean principal angle to the reference per layer x step;
- ``errors_*``: per-error-type step rates vs SFT step (ID and OOD), mean over seeds;
- ``study_*``: the study in one figure: ID and OOD success vs SFT step (mean and CI bands),
  with the OOD (and ID) success at the end of RL from each init checkpoint drawn over it (mean
  and CI, one marker per RL stage), and the OOD peak.

Each figure has a title, axis labels with their units (the label's last parenthesis), a legend
(or a labelled colour bar) and a CI band wherever the table it draws has a finite interval
(``tests/unit/test_plots.py`` checks these on the figures themselves). Each function returns the
written path, or None when there is nothing to draw.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sweeps.analysis.curves import Results  # noqa: E402
from sweeps.analysis.rotation import SCALARS, layer_matrix  # noqa: E402
from sweeps.analysis.tables import ID, OOD, Study  # noqa: E402

# Axis labels, with units.
STEP = "SFT step (optimizer steps)"
INIT_STEP = "SFT step of the RL init checkpoint (optimizer steps)"
SUCCESS = "success (fraction of eval items solved)"
OOD_SUCCESS = "OOD success (fraction of eval items solved)"
DROP = "OOD drop from the peak (success, fraction of items)"
SCALAR_LABELS = {
    "angle": "mean principal angle to the reference (rad)",
    "chordal": "normalised chordal distance (unitless, 0 to 1)",
    "sv_drift": "singular-value drift, mean |Δσ|/σ (ratio)",
}


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts))


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _band(ax: Any, rows: list[dict[str, Any]], label: str, color: str | None = None) -> None:
    """The mean curve of ``rows`` (curves-table rows of one metric) with its CI band where finite."""
    steps = [r["step"] for r in rows]
    (line,) = ax.plot(steps, [r["mean"] for r in rows], "-o", ms=3, color=color, label=label)
    color = line.get_color()
    lo, hi = np.array([r["lo"] for r in rows], float), np.array([r["hi"] for r in rows], float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.array(steps)[ok], lo[ok], hi[ok], color=color, alpha=0.2, lw=0)


def _row(res: Results, model: str, task: str, stage: str, metric: str, init: str = "") -> dict[str, Any] | None:
    return next(
        (
            r
            for r in res.summary
            if (r["model"], r["task"], r["stage"], r["metric"], r.get("init", "")) == (model, task, stage, metric, init)
        ),
        None,
    )


def sft_curves(res: Results, study: Study, model: str, task: str, out: Path) -> Path | None:
    rows = [r for r in res.curves if (r["model"], r["task"]) == (model, task)]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for metric, label, color in ((ID, "ID success", "tab:blue"), (OOD, "OOD success", "tab:red")):
        _band(ax, [r for r in rows if r["metric"] == metric], label, color)
    for key in study.keys("sft"):
        if (key.model, key.task, key.init) == (model, task, "base"):
            ax.plot(*study.curve(key, OOD), color="tab:red", alpha=0.25, lw=0.8)
    step, value = _row(res, model, task, "sft", "ood_peak_step"), _row(res, model, task, "sft", "ood_peak_value")
    if step and math.isfinite(step["estimate"]):
        ax.axvline(step["estimate"], color="k", ls=":", lw=1, label=f"OOD peak (step {step['estimate']:.0f})")
        if math.isfinite(step["lo"]):
            ax.axvspan(step["lo"], step["hi"], color="k", alpha=0.08)
        ax.plot([step["estimate"]], [value["estimate"]], "k*", ms=12)
    ax.set(xlabel=STEP, ylabel=SUCCESS, title=f"SFT: {model} / {task} (mean, 95% CI over seeds; seeds' OOD faint)")
    ax.legend(fontsize=8)
    return _save(fig, out / f"sft_{slug(model, task)}.png")


def recovery(res: Results, stage: str, model: str, task: str, out: Path) -> Path | None:
    rl = sorted(
        (
            r
            for r in res.summary
            if (r["model"], r["task"], r["stage"], r["metric"]) == (model, task, stage, "rl_end_ood")
        ),
        key=lambda r: r["init_step"],
    )
    if not rl:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    _band(
        ax, [r for r in res.curves if (r["model"], r["task"], r["metric"]) == (model, task, OOD)], "SFT OOD", "tab:red"
    )
    x, y = [r["init_step"] for r in rl], np.array([r["estimate"] for r in rl])
    lo, hi = np.array([r["lo"] for r in rl], float), np.array([r["hi"] for r in rl], float)
    err = np.where(np.isfinite(lo), [y - lo, hi - y], 0.0)
    ax.errorbar(x, y, yerr=err, fmt="s-", color="tab:green", capsize=3, label=f"{stage} from checkpoint (RL end)")
    peak = _row(res, model, task, "sft", "ood_max_value")
    if peak:
        ax.axhline(peak["estimate"], color="k", ls="--", lw=0.8, label="SFT_MaxOOD (mean)")
    win = next((w for w in res.windows if (w["stage"], w["model"], w["task"]) == (stage, model, task)), None)
    if win and win["lo_step"] is not None:
        ax.axvspan(
            win["lo_step"],
            win["hi_step"],
            color="tab:green",
            alpha=0.12,
            label=f"recovery window [{win['lo_step']}, {win['hi_step']}]",
        )
    ax.set(xlabel=INIT_STEP, ylabel=OOD_SUCCESS, title=f"{stage} from SFT checkpoints: {model} / {task}")
    ax.legend(fontsize=8)
    return _save(fig, out / f"recovery_{slug(stage, model, task)}.png")


def rotation(res: Results, model: str, task: str, out: Path) -> Path | None:
    pts = [p for p in res.points if (p["model"], p["task"]) == (model, task)]
    if not pts:
        return None
    fig, axes = plt.subplots(1, len(SCALARS), figsize=(4 * len(SCALARS), 3.6))
    seeds = sorted({p["seed"] for p in pts})
    for ax, scalar in zip(axes, SCALARS):
        ok = [p for p in pts if math.isfinite(p[scalar]) and math.isfinite(p["ood_drop"])]
        for i, s in enumerate(seeds):
            mine = [p for p in ok if p["seed"] == s]
            ax.scatter(
                [p[scalar] for p in mine], [p["ood_drop"] for p in mine], s=14, color=f"C{i % 10}", label=f"seed {s}"
            )
        x, y = np.array([p[scalar] for p in ok]), np.array([p["ood_drop"] for p in ok])
        if len(x) >= 2 and np.ptp(x) > 0:
            a, b = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 20)
            ax.plot(xs, a * xs + b, "k-", lw=1)
        rho = next(
            (
                c
                for c in res.correlations
                if (c["model"], c["task"], c["scalar"], c["correlation"]) == (model, task, scalar, "spearman")
            ),
            None,
        )
        title = scalar + (" (control)" if scalar == "sv_drift" else "")
        if rho and math.isfinite(rho["estimate"]):
            title += f"\nSpearman {rho['estimate']:.2f} [{rho['lo']:.2f}, {rho['hi']:.2f}]"
        ax.set(xlabel=SCALAR_LABELS.get(scalar, f"{scalar} (as logged)"), ylabel=DROP, title=title)
    axes[0].legend(fontsize=7)
    return _save(fig, out / f"rotation_{slug(model, task)}.png")


def layers(study: Study, model: str, task: str, ref: str | None, out: Path) -> Path | None:
    names, steps, grid = layer_matrix(study, model, task, ref)
    if not names or not np.isfinite(grid).any():
        return None
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 2))
    im = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps], rotation=45, fontsize=7)
    ax.set_yticks(range(len(names)), [str(n) for n in names], fontsize=7)
    ax.set(xlabel=STEP, ylabel="layer (index)", title=f"mean principal angle to {ref}: {model} / {task}")
    fig.colorbar(im, ax=ax, label="mean principal angle (rad)")
    return _save(fig, out / f"layers_{slug(model, task)}.png")


def errors(res: Results, model: str, task: str, out: Path) -> Path | None:
    rows = [r for r in res.curves if (r["model"], r["task"]) == (model, task) and "/err/" in r["metric"]]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, split in zip(axes, ("id", "ood")):
        for metric in sorted({r["metric"] for r in rows if r["metric"].startswith(f"eval/{split}/err/")}):
            _band(ax, [r for r in rows if r["metric"] == metric], metric.rsplit("/", 1)[1])
        ax.set(
            xlabel=STEP,
            ylabel="step rate (fraction of attempts)",
            title=f"{split.upper()} error types (mean over seeds)",
        )
        ax.legend(fontsize=7)
    return _save(fig, out / f"errors_{slug(model, task)}.png")


def study_figure(res: Results, study: Study, model: str, task: str, out: Path) -> Path | None:
    rows = [r for r in res.curves if (r["model"], r["task"]) == (model, task)]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for metric, label, color in ((ID, "SFT: ID success", "tab:blue"), (OOD, "SFT: OOD success", "tab:red")):
        _band(ax, [r for r in rows if r["metric"] == metric], label, color)
    markers = iter(("s", "D", "^", "v", "P"))
    for stage in study.rl_stages():
        marker = next(markers, "o")
        for metric, color, name in (("rl_end_ood", "darkred", "OOD"), ("rl_end_id", "navy", "ID")):
            rl = sorted(
                (
                    r
                    for r in res.summary
                    if (r["model"], r["task"], r["stage"], r["metric"]) == (model, task, stage, metric)
                ),
                key=lambda r: r["init_step"],
            )
            if not rl:
                continue
            x, y = [r["init_step"] for r in rl], np.array([r["estimate"] for r in rl])
            lo, hi = np.array([r["lo"] for r in rl], float), np.array([r["hi"] for r in rl], float)
            err = np.where(np.isfinite(lo), [y - lo, hi - y], 0.0)
            ax.errorbar(
                x,
                y,
                yerr=err,
                fmt=marker,
                ms=7,
                color=color,
                mfc="white" if name == "ID" else color,
                capsize=3,
                lw=1.2,
                label=f"after {stage} from that checkpoint: {name}",
            )
    step = _row(res, model, task, "sft", "ood_peak_step")
    if step and math.isfinite(step["estimate"]):
        ax.axvline(step["estimate"], color="k", ls=":", lw=1, label=f"OOD peak (mean step {step['estimate']:.0f})")
    ax.set(
        xlabel="SFT step; for RL, that of its init checkpoint (optimizer steps)",
        ylabel="success, greedy (fraction of eval items solved)",
    )
    ax.set_title(f"{model} / {task}: SFT (mean, 95% CI over seeds) and RL from SFT checkpoints", fontsize=9)
    shown = [r for r in rows if r["metric"] in (ID, OOD)]
    top = max(
        [r["hi"] for r in shown if math.isfinite(r["hi"])]
        + [r["mean"] for r in shown]
        + [r["hi"] for r in res.summary if r.get("metric") in ("rl_end_ood", "rl_end_id") and math.isfinite(r["hi"])]
    )
    ax.set_ylim(-0.01, min(1.02, 1.15 * top + 0.02))  # the data's range, not 0..1: small effects stay visible
    ax.legend(fontsize=7, loc="best")
    return _save(fig, out / f"study_{slug(model, task)}.png")


def ablation(res: Results, model: str, task: str, out: Path) -> Path | None:
    """OOD, ID and rotation vs SFT step per SFT variant (mean over seeds, CI bands)."""
    rows = [r for r in res.ablation_curves if (r["model"], r["task"]) == (model, task)]
    if not rows:
        return None
    from sweeps.analysis.roles import ROTATION
    from sweeps.runs import split_variant

    inits = list(dict.fromkeys(r["init"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, label) in zip(
        axes, ((OOD, "OOD success"), (ID, "ID success"), (ROTATION, "mean principal angle to the start (rad)"))
    ):
        for i, init in enumerate(inits):
            pts = [r for r in rows if r["init"] == init and r["metric"] == metric]
            if pts:
                _band(ax, pts, split_variant(init)[1] or "plain SFT", colors[i % len(colors)])
        ax.set(xlabel="SFT step", ylabel=label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"rotation-preserving SFT vs plain SFT: {model} / {task}")
    return _save(fig, out / f"ablation_{slug(model, task)}.png")


def draw_all(res: Results, study: Study, out: Path) -> list[tuple[str, Path]]:
    """Every figure, as (caption, path) in report order."""
    figs: list[tuple[str, Path | None]] = []
    for model, task in study.cells():
        cell = f"{model} / {task}"
        figs.append(
            (f"the study: SFT curves and RL from checkpoints ({cell})", study_figure(res, study, model, task, out))
        )
        figs.append((f"SFT ID and OOD success ({cell})", sft_curves(res, study, model, task, out)))
        figs += [
            (f"{stage} from SFT checkpoints ({cell})", recovery(res, stage, model, task, out))
            for stage in study.rl_stages()
        ]
        ref = next((c["reference"] for c in res.correlations if (c["model"], c["task"]) == (model, task)), None)
        figs.append((f"rotation vs OOD drop ({cell})", rotation(res, model, task, out)))
        figs.append((f"per-layer rotation ({cell})", layers(study, model, task, ref, out)))
        figs.append((f"error types ({cell})", errors(res, model, task, out)))
        figs.append((f"rotation-preserving SFT vs plain SFT ({cell})", ablation(res, model, task, out)))
    return [(c, p) for c, p in figs if p is not None]
