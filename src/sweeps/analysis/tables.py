"""A study's run directories read into tidy tables keyed by the grid axes.

The study directory holds ``<stage>/<model>/<task>/<init>/seed=<s>/`` run directories
(``sweeps.runs.layout``): stage ``sft`` with init ``base``, and one stage per RL algorithm with inits
``sft-step=NNNNNN``. :func:`read_study` reads every run's ``metrics.jsonl`` (evaluation records
only: keys under ``eval/``, and the online rotation monitor's two means) and, when the spectral
stage has run, ``spectral/summary.csv``. SFT variants (the rotation regulariser on) are SFT runs
whose init is ``base+<variant>`` (``sweeps.runs.with_variant``). It never trains or evaluates
anything. What it cannot use is reported rather than skipped silently:

- ``missing``: RL cells (algo x model x task x init x seed) absent for a seed that has an SFT
  run, present without ``DONE`` (unfinished: left out of the statistics), SFT runs without
  ``DONE``, and RL inits whose SFT seed is absent;
- ``non_finite``: every evaluation value that is NaN, infinite or not a number (kept in the
  tidy table as ``nan``, left out of every statistic).

The tidy table (:func:`tidy_rows`) has one row per (stage, model, task, init, init_step, seed,
step, metric, value), written as CSV with :func:`write_csv`; pandas is not needed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.runs import atomic_write_text, iter_metrics, layout
from sweeps.runs.layout import RunKey

SFT = layout.SFT
OOD, ID = "eval/ood/success", "eval/id/success"
ROTATION_KEYS = ("rotation/angle_mean", "rotation/chordal_normalised")  # the online monitor's means, when it ran


@dataclass
class Study:
    root: Path
    metrics: dict[RunKey, dict[str, dict[int, float]]] = field(default_factory=dict)  # run -> metric -> step -> v
    done: dict[RunKey, bool] = field(default_factory=dict)
    spectral: dict[RunKey, list[dict[str, str]]] = field(default_factory=dict)
    non_finite: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)

    def keys(self, stage: str | None = None, done_only: bool = True) -> list[RunKey]:
        return sorted(
            k for k in self.metrics if (stage is None or k.stage == stage) and (self.done[k] or not done_only)
        )

    def stages(self) -> list[str]:
        return sorted({k.stage for k in self.metrics})

    def rl_stages(self) -> list[str]:
        return [s for s in self.stages() if s != SFT]

    def cells(self) -> list[tuple[str, str]]:
        """(model, task) pairs with an SFT run."""
        return sorted({(k.model, k.task) for k in self.metrics if k.stage == SFT})

    def curve(self, key: RunKey, metric: str) -> tuple[list[int], list[float]]:
        """Steps and finite values of one metric of one run, by step."""
        pts = sorted((s, v) for s, v in self.metrics.get(key, {}).get(metric, {}).items() if math.isfinite(v))
        return [s for s, _ in pts], [v for _, v in pts]


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_run(study: Study, key: RunKey, path: Path) -> None:
    """Evaluation metrics (and spectral summary rows) of one run directory into ``study``."""
    table: dict[str, dict[int, float]] = {}
    for rec in iter_metrics(path / layout.METRICS):
        step = rec.get("step")
        for name, raw in rec.items():
            if not (name.startswith("eval/") or name in ROTATION_KEYS) or not isinstance(step, int):
                continue
            v = _as_float(raw)
            if not math.isfinite(v):
                study.non_finite.append(
                    {"run": str(path.relative_to(study.root)), "step": step, "metric": name, "value": repr(raw)}
                )
            table.setdefault(name, {})[step] = v
    study.metrics[key] = table
    study.done[key] = (path / layout.DONE).is_file()
    spectral = path / layout.SPECTRAL_SUMMARY
    if spectral.is_file():
        with open(spectral, newline="") as fh:
            study.spectral[key] = list(csv.DictReader(fh))


def read_study(root: str | Path, stages: list[str] | None = None) -> Study:
    """Every run directory under ``root`` (a study directory), restricted to ``stages`` (SFT always)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"study directory {root} does not exist: run the study first or fix study=/paths.output_dir="
        )
    study = Study(root)
    for key, path in layout.runs(root):
        if stages and key.stage != SFT and key.stage not in stages:
            continue
        read_run(study, key, path)
    if not study.keys(SFT, done_only=False):
        raise FileNotFoundError(f"no SFT run directories under {root}/sft: nothing to analyse")
    study.missing = find_missing(study)
    return study


def find_missing(study: Study) -> list[dict[str, Any]]:
    """Unfinished runs and RL cells absent for some seed (see module doc)."""
    out = [
        {
            "stage": k.stage,
            "model": k.model,
            "task": k.task,
            "init": k.init,
            "seed": k.seed,
            "problem": "no DONE (unfinished; left out)",
        }
        for k in study.keys(done_only=False)
        if not study.done[k]
    ]
    for stage in study.rl_stages():
        for model, task in study.cells():
            sft_seeds = {k.seed for k in study.keys(SFT) if (k.model, k.task) == (model, task)}
            rl = [k for k in study.keys(stage, done_only=False) if (k.model, k.task) == (model, task)]
            out += [
                {**k._asdict(), "problem": "init is not an SFT checkpoint (sft-step=N); left out"}
                for k in rl
                if k.init_step is None
            ]
            for init in sorted({k.init for k in rl if k.init_step is not None}):
                have = {k.seed for k in rl if k.init == init}
                out += [
                    {"stage": stage, "model": model, "task": task, "init": init, "seed": s, "problem": "RL run missing"}
                    for s in sorted(sft_seeds - have)
                ]
                out += [
                    {
                        "stage": stage,
                        "model": model,
                        "task": task,
                        "init": init,
                        "seed": s,
                        "problem": "no finished SFT run for this seed",
                    }
                    for s in sorted(have - sft_seeds)
                ]
    return out


# --- tidy rows and CSV ----------------------------------------------------------------------------
TIDY_COLUMNS = ("stage", "model", "task", "init", "init_step", "seed", "step", "metric", "value")


def tidy_rows(study: Study) -> list[dict[str, Any]]:
    """One row per (run axes, step, metric): the long table every other table derives from."""
    rows = []
    for key in study.keys(done_only=False):
        for metric, series in sorted(study.metrics[key].items()):
            for step, v in sorted(series.items()):
                rows.append(
                    {
                        **key._asdict(),
                        "init_step": key.init_step if key.init_step is not None else "",
                        "step": step,
                        "metric": metric,
                        "value": v,
                    }
                )
    return rows


def to_csv(rows: list[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """CSV text of ``rows`` (columns: ``columns`` or the union of keys in first-seen order)."""
    if columns is None:
        columns = list(dict.fromkeys(c for r in rows for c in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{c: _fmt(r.get(c, "")) for c in columns} for r in rows])
    return buf.getvalue()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return v


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: Iterable[str] | None = None) -> Path:
    """Write ``rows`` as CSV atomically (a header only when there are no rows and columns are given)."""
    atomic_write_text(path, to_csv(rows, columns) if rows or columns else "")
    return Path(path)
