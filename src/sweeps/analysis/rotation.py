"""Rotation ↔ OOD: do the checkpoints that rotated most lose most OOD success?

Per PAPER.md section 8: for every checkpoint with a spectral summary row
(``<run>/spectral/summary.csv``, group ``all``, reference ``ood_peak`` when present) the point
(rotation, OOD drop) pairs a rotation scalar (mean principal angle; normalised chordal distance)
with SFT_MaxOOD(seed) - OOD(checkpoint); singular-value drift is the control. Per model and
task, Spearman and Pearson correlations over all points get percentile CIs from a cluster
bootstrap that resamples seeds (``bootstrap.cluster_bootstrap_ci``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeps.analysis.bootstrap import cluster_bootstrap_ci
from sweeps.analysis.tables import OOD, SFT, Study

if TYPE_CHECKING:
    from sweeps.analysis.curves import Options

NAN = float("nan")

REFERENCES = ("ood_peak", "base")  # preferred first
SCALARS = {
    "angle": (("angle_mean",), ("angle",), ("max", "random")),
    "chordal": ((), ("chordal",), ("random",)),
    "sv_drift": (("sv_drift",), ("drift",), ()),
}  # name: (exact names, substrings, excluded)


def pick_columns(columns: list[str], scalar: str) -> list[str]:
    """The spectral summary columns that make up ``scalar`` (exact name first, else by substring)."""
    exact, subs, exclude = SCALARS[scalar]
    found = [c for c in exact if c in columns]
    return found or [c for c in columns if any(s in c for s in subs) and not any(x in c for x in exclude)]


def scalar_value(row: dict[str, str], cols: list[str]) -> float:
    vals = [float(row[c]) for c in cols if row.get(c) not in (None, "")]
    return float(np.mean(vals)) if vals else NAN


def reference_of(study: Study, model: str, task: str) -> str | None:
    refs = {
        r.get("reference") for k, rows in study.spectral.items() if (k.model, k.task) == (model, task) for r in rows
    }
    return next((r for r in REFERENCES if r in refs), None)


def rotation_points(
    study: Study, model: str, task: str, sft: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None]:
    """(points, reference): one point per (run, checkpoint) with rotation scalars and the OOD drop."""
    ref = reference_of(study, model, task)
    sft_max = {r["seed"]: r["max_value"] for r in sft}
    points = []
    for key, rows in sorted(study.spectral.items()):
        if (key.model, key.task) != (model, task) or not study.done.get(key) or key.seed not in sft_max:
            continue
        cols = {s: pick_columns(list(rows[0]), s) for s in SCALARS} if rows else {}
        ood = study.metrics[key].get(OOD, {})
        for row in rows:
            if row.get("reference") != ref or row.get("group", "all") not in ("all", ""):
                continue
            step = int(row["step"])
            drop = sft_max[key.seed] - ood.get(step, NAN)
            points.append(
                {
                    "model": model,
                    "task": task,
                    "stage": key.stage,
                    "init": key.init,
                    "seed": key.seed,
                    "step": step,
                    "ood_drop": drop,
                    **{s: scalar_value(row, c) for s, c in cols.items()},
                }
            )
    return points, ref


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return NAN
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    return pearson(rankdata(x), rankdata(y)) if len(x) >= 3 else NAN


def correlations(opts: Options, points: list[dict[str, Any]], ref: str | None) -> list[dict[str, Any]]:
    """Spearman and Pearson of each scalar with the OOD drop, with seed-cluster bootstrap CIs."""
    out = []
    for scalar in SCALARS:
        pts = [p for p in points if math.isfinite(p.get(scalar, NAN)) and math.isfinite(p["ood_drop"])]
        seeds = sorted({p["seed"] for p in pts})
        clusters = [
            (
                np.array([p[scalar] for p in pts if p["seed"] == s]),
                np.array([p["ood_drop"] for p in pts if p["seed"] == s]),
            )
            for s in seeds
        ]
        for name, fn in (("spearman", spearman), ("pearson", pearson)):
            est, lo, hi, scheme = cluster_bootstrap_ci(clusters, fn, opts.confidence, opts.n_resamples, opts.seed)
            if len(pts) < 3 or not math.isfinite(est):
                note = f"undefined: {len(pts)} point(s), or a constant variable"
            elif scheme == "points":
                note = "one seed: checkpoints resampled as if independent"
            else:
                note = "" if math.isfinite(lo) else "CI unavailable"
            out.append(
                {
                    "model": points[0]["model"] if points else "",
                    "task": points[0]["task"] if points else "",
                    "reference": ref,
                    "scalar": scalar,
                    "role": "control" if scalar == "sv_drift" else "rotation",
                    "correlation": name,
                    "estimate": est,
                    "lo": lo,
                    "hi": hi,
                    "n_points": len(pts),
                    "n_seeds": len(seeds),
                    "note": note,
                }
            )
    return out


def layer_matrix(
    study: Study, model: str, task: str, ref: str | None, scalar: str = "angle"
) -> tuple[list[int], list[int], np.ndarray]:
    """(layers, steps, mean over SFT seeds [layers, steps]) of ``scalar`` per layer, for the heatmap."""
    acc: dict[tuple[int, int], list[float]] = {}
    for key, rows in study.spectral.items():
        if key.stage != SFT or (key.model, key.task) != (model, task) or not rows:
            continue
        cols = pick_columns(list(rows[0]), scalar)
        for row in rows:
            group = row.get("group", "")
            if row.get("reference") == ref and group.startswith("layer") and group[5:].isdigit():
                acc.setdefault((int(group[5:]), int(row["step"])), []).append(scalar_value(row, cols))
    layers, steps = sorted({l for l, _ in acc}), sorted({s for _, s in acc})
    grid = np.full((len(layers), len(steps)), NAN)  # [L, S]
    for (l, s), v in acc.items():
        grid[layers.index(l), steps.index(s)] = np.nanmean(v) if np.isfinite(v).any() else NAN
    return layers, steps, grid
