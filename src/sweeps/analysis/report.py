"""Publishing the analysis: CSV tables, a static HTML report, the study's MLflow parent run.

- :func:`write_tables` writes every table of :class:`curves.Results` (and the tidy long
  table, the missing runs and the non-finite values) as CSV into ``<study>/analysis/``.
- :func:`write_report` writes ``<study>/report/index.html``: plain HTML with the figures by
  relative path (``../analysis/figures/...``), so it opens from disk without a server. Every
  interval is shown as ``estimate [lo, hi]``, or ``estimate (CI unavailable)`` when there was
  none to compute (one seed, degenerate resamples); missing runs and non-finite metrics are
  listed, not hidden.
- :func:`log_mlflow` logs the summary metrics to the study's parent run (tags
  ``sweeps.role=parent`` and ``sweeps.study=<study>``, created when missing, as ``sweeps-study``
  does): each estimate under ``analysis/<model>/<task>/<stage>/<init>/<metric>`` plus ``_lo``
  and ``_hi`` when the interval exists, and the CSVs, figures and report as artifacts.
"""

from __future__ import annotations

import html
import math
import re
import time
from pathlib import Path
from typing import Any

from sweeps.analysis.curves import Results
from sweeps.analysis.tables import TIDY_COLUMNS, Study, tidy_rows, write_csv
from sweeps.runs import atomic_write_text


def write_tables(res: Results, study: Study, out: Path) -> list[Path]:
    """Every table as ``<out>/<name>.csv``; returns the paths."""
    tables = {
        "tidy": (tidy_rows(study), TIDY_COLUMNS),
        "summary": (res.summary, None),
        "sft_seeds": (res.sft_seeds, None),
        "rl_seeds": (res.rl_seeds, None),
        "windows": (res.windows, None),
        "peak_tests": (res.tests, None),
        "curves": (res.curves, None),
        "rotation_points": (res.points, None),
        "correlations": (res.correlations, None),
        "ablation": (res.ablation, None),
        "ablation_seeds": (res.ablation_seeds, None),
        "ablation_curves": (res.ablation_curves, None),
        "selection": (res.selection, None),
        "selection_seeds": (res.selection_seeds, None),
        "missing": (study.missing, ("stage", "model", "task", "init", "seed", "problem")),
        "non_finite": (study.non_finite, ("run", "step", "metric", "value")),
    }
    return [write_csv(out / f"{name}.csv", rows, cols) for name, (rows, cols) in tables.items() if rows or cols]


# --- HTML -------------------------------------------------------------------------------------------
def fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def interval(r: dict[str, Any]) -> str:
    if not math.isfinite(r["estimate"]):
        return "nan"
    if not math.isfinite(r["lo"]):
        return f"{fmt(r['estimate'])} (CI unavailable)"
    return f"{fmt(r['estimate'])} [{fmt(r['lo'])}, {fmt(r['hi'])}]"


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, limit: int = 500) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    columns = columns or list(dict.fromkeys(c for r in rows for c in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows[:limit]
    )
    more = f"<p>... {len(rows) - limit} more rows in the CSV</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _with_interval(rows: list[dict[str, Any]], keep: list[str]) -> list[dict[str, Any]]:
    sft_end = lambda r: {"init": f"{r['init']} (SFT_End)"} if r.get("is_sft_end") else {}  # noqa: E731
    return [
        {
            **{k: r.get(k) for k in keep},
            **sft_end(r),
            "estimate [lo, hi]": interval(r),
            "n": r.get("n", r.get("n_points")),
            "note": r.get("note", ""),
        }
        for r in rows
    ]


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px}th{background:#eee}figure{display:inline-block;margin:1em}"
    "img{max-width:100%}.note{color:#a40}"
)


def notes(res: Results, study: Study) -> list[str]:
    out = list(res.notes)
    if study.missing:
        out.append(f"{len(study.missing)} missing or unfinished run(s): listed below and in missing.csv")
    if study.non_finite:
        out.append(
            f"{len(study.non_finite)} non-finite evaluation value(s) left out of every statistic: see non_finite.csv"
        )
    return out


def write_report(res: Results, study: Study, figures: list[tuple[str, Path]], tables: list[Path], report: Path) -> Path:
    """``report`` (an index.html path) with every figure and table; returns its path."""
    rel = lambda p: Path(_relpath(p, report.parent)).as_posix()  # noqa: E731
    parts = [
        f"<h1>Analysis of study <code>{html.escape(study.root.name)}</code></h1>",
        f"<p>Run directories under <code>{html.escape(str(study.root))}</code>; bootstrap CIs over seeds.</p>",
        "<h2>Notes</h2>",
        "<ul>"
        + ("".join(f"<li class=note>{html.escape(n)}</li>" for n in notes(res, study)) or "<li>none</li>")
        + "</ul>",
        "<h2>Summary metrics</h2>",
        table(_with_interval(res.summary, ["model", "task", "stage", "init", "metric"])),
        "<h2>Recovery windows</h2>",
        table(res.windows),
        "<h2>Does RL surpass the SFT peak? (paired, per seed)</h2>",
        table(
            [
                {**a, **{k: t[k] for k in ("p_below", "p_above", "never_surpasses")}}
                for a, t in zip(_with_interval(res.tests, ["model", "task", "stage", "metric"]), res.tests)
            ]
        ),
        "<h2>Rotation ↔ OOD drop</h2>",
        table(_with_interval(res.correlations, ["model", "task", "reference", "scalar", "role", "correlation"]))
        if res.correlations
        else "<p class=note>unavailable: no spectral summaries (run sweeps-spectral)</p>",
        *ablation_sections(res),
        "<h2>Figures</h2>",
    ]
    parts += [
        f'<figure><img src="{html.escape(rel(p))}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
        for c, p in figures
    ]
    parts += [
        "<h2>Per seed: SFT</h2>",
        table(res.sft_seeds),
        "<h2>Per seed: RL</h2>",
        table(res.rl_seeds),
        "<h2>Missing or unfinished runs</h2>",
        table(study.missing),
        "<h2>Non-finite evaluation values</h2>",
        table(study.non_finite, limit=100),
        "<h2>Tables (CSV)</h2>",
        "<ul>" + "".join(f'<li><a href="{html.escape(rel(t))}">{t.name}</a></li>' for t in tables) + "</ul>",
    ]
    doc = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(study.root.name)}: analysis</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    atomic_write_text(report, doc)
    return report


def ablation_sections(res: Results) -> list[str]:
    """The rotation-preserving SFT comparison and the checkpoint selection, when the study has them."""
    parts = []
    if res.ablation:
        rows = [
            {**a, "p_below": r.get("p_below", ""), "p_above": r.get("p_above", ""), "effect": r.get("effect", "")}
            for a, r in zip(_with_interval(res.ablation, ["variant", "comparison", "metric"]), res.ablation)
        ]
        parts += [
            "<h2>Rotation-preserving SFT vs plain SFT (per seed, paired)</h2>",
            "<p>value: mean over seeds; minus plain: mean of the per-seed differences from plain SFT "
            "(same seed, base and data), percentile bootstrap CI over seeds, sign-flip p-values.</p>",
            table(rows),
        ]
    if res.selection:
        parts += [
            "<h2>Checkpoint selection by rotation (no OOD data)</h2>",
            "<p>gap_to_ood_peak = OOD(picked checkpoint) − the run's OOD maximum (0 = the peak found).</p>",
            table(_with_interval(res.selection, ["init", "rule", "metric"])),
        ]
    return parts


def _relpath(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


# --- MLflow -----------------------------------------------------------------------------------------
def metric_key(*parts: Any) -> str:
    """An MLflow-safe key from the parts (``=`` and other symbols become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_\-./ :]", "_", "/".join(str(p) for p in parts if p not in (None, "")))


def summary_metrics(res: Results) -> dict[str, float]:
    """Flat {key: value} of every estimate, with ``_lo``/``_hi`` where an interval exists."""
    out: dict[str, float] = {}
    rows = [
        (("analysis", r["model"], r["task"], r["stage"], r.get("init"), r["metric"]), r)
        for r in res.summary + res.tests
    ]
    rows += [(("analysis", r["model"], r["task"], "corr", r["scalar"], r["correlation"]), r) for r in res.correlations]
    for parts, r in rows:
        key = metric_key(*parts)
        for suffix, name in (("", "estimate"), ("_lo", "lo"), ("_hi", "hi")):
            if isinstance(r[name], (int, float)) and math.isfinite(r[name]):
                out[key + suffix] = float(r[name])
    rows = [
        (
            (
                "analysis",
                r["model"],
                r["task"],
                "ablation",
                r["init"],
                r["metric"] + ("_vs_plain" if r["comparison"] != "value" else ""),
            ),
            r,
        )
        for r in res.ablation
    ]
    rows += [
        (("analysis", r["model"], r["task"], "selection", r["init"], r["rule"], r["metric"]), r) for r in res.selection
    ]
    for parts, r in rows:
        key = metric_key(*parts)
        for suffix, name in (("", "estimate"), ("_lo", "lo"), ("_hi", "hi")):
            if isinstance(r[name], (int, float)) and math.isfinite(r[name]):
                out[key + suffix] = float(r[name])
    for t in res.tests:
        key = metric_key("analysis", t["model"], t["task"], t["stage"], t["init"], t["metric"])
        out.update({f"{key}_{p}": t[p] for p in ("p_below", "p_above") if math.isfinite(t[p])})
    for w in res.windows:
        base = metric_key("analysis", w["model"], w["task"], w["stage"], "window")
        out[base + "_size"] = float(len(w["window"]))
        if w["lo_step"] is not None:
            out[base + "_first_step"], out[base + "_last_step"] = float(w["lo_step"]), float(w["hi_step"])
    return out


def parent_run(client: Any, experiment: str, study: str) -> str:
    """The study's parent run id (tags as ``sweeps-study`` sets them), created when missing."""
    from sweeps.tracking.mlflow_tracker import ensure_experiment, retry

    exp = retry(lambda: ensure_experiment(client, experiment))
    found = client.search_runs(
        [exp], filter_string=f"tags.`sweeps.role` = 'parent' and tags.`sweeps.study` = '{study}'"
    )
    if found:
        return found[0].info.run_id
    return client.create_run(
        exp, run_name=f"study/{study}", tags={"sweeps.role": "parent", "sweeps.study": study}
    ).info.run_id


def log_mlflow(
    uri: str, experiment: str, study: str, metrics: dict[str, float], artifacts: dict[str, list[Path]]
) -> str:
    """Log ``metrics`` and ``artifacts`` ({artifact dir: files}) to the parent run; returns its id."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.mlflow_tracker import init_store, retry

    init_store(uri)
    client = MlflowClient(uri)
    run_id = parent_run(client, experiment, study)
    now = int(time.time() * 1000)
    items = [Metric(k, v, now, 0) for k, v in sorted(metrics.items())]
    for i in range(0, len(items), 500):
        retry(lambda i=i: client.log_batch(run_id, metrics=items[i : i + 500]))
    for where, files in artifacts.items():
        for f in files:
            retry(lambda f=f, where=where: client.log_artifact(run_id, str(f), where))
    retry(lambda: client.set_tag(run_id, "sweeps.analysis", "done"))
    return run_id
