"""The analysis stage behind ``sweeps-analyze`` (:mod:`sweeps.cli.analyze`): peaks, recovery
windows and rotation↔OOD correlations with bootstrap CIs.

Reads a study's run directories (never trains; ``sweeps.analysis.tables``), computes the
per-seed quantities and their CIs across seeds (``sweeps.analysis.curves``), and writes CSV
tables and PNG figures into ``<output_dir>/<study>/analysis/``, the static report
``<output_dir>/<study>/report/index.html``, and the summary metrics (with ``_lo``/``_hi``),
tables and figures to the study's MLflow parent run (``sweeps.analysis.report``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from sweeps import schema
from sweeps.analysis import config  # noqa: F401  (registers analyze_schema)
from sweeps.cli import absolute_output_dir
from sweeps.runs import atomic_write_json

log = logging.getLogger("sweeps.analyze")


def analyze(cfg: DictConfig) -> dict[str, Any]:
    """Analyse the study ``cfg.study`` under ``cfg.paths.output_dir``; returns a short summary."""
    from sweeps.analysis import plots, report
    from sweeps.analysis.curves import Options, analyse
    from sweeps.analysis.tables import read_study

    with open_dict(cfg):
        if "/" in str(cfg.study):  # study=outputs/<name>: a study directory
            cfg.paths.output_dir, cfg.study = str(Path(cfg.study).expanduser().parent), Path(cfg.study).name
    absolute_output_dir(cfg)
    schema.validate(cfg)
    a, root = cfg.analysis, Path(cfg.paths.output_dir) / cfg.study
    study = read_study(root, list(a.stages) or None)
    unknown = sorted(set(a.stages) - set(study.stages()))
    if unknown:
        raise ValueError(
            f"analysis.stages names {unknown}, which have no run directories under {root} (found {study.stages()})"
        )
    res = analyse(study, Options(a.confidence, a.n_resamples, a.seed, a.method, a.flat_tolerance, a.select_fraction))
    out = root / "analysis"
    tables = report.write_tables(res, study, out)
    figures = plots.draw_all(res, study, out / "figures")
    page = report.write_report(res, study, figures, tables, root / "report" / "index.html")
    metrics = report.summary_metrics(res)
    summary = {
        "study": cfg.study,
        "report": str(page),
        "tables": len(tables),
        "figures": len(figures),
        "metrics": len(metrics),
        "missing": len(study.missing),
        "non_finite": len(study.non_finite),
        "parent_run_id": None,
    }
    if cfg.tracking.parent_run:  # the study's parent run holds the analysis
        artifacts = {"analysis": tables, "analysis/figures": [p for _, p in figures], "report": [page]}
        try:
            summary["parent_run_id"] = report.log_mlflow(
                cfg.tracking.uri, cfg.tracking.experiment or cfg.study, cfg.study, metrics, artifacts
            )
        except Exception as err:  # noqa: BLE001 - the files are the result; MLflow mirrors them
            log.warning("MLflow logging failed (%s); the tables, figures and report are on disk", err)
    atomic_write_json(out / "analysis.json", summary)
    log.info("analysis of %s: %s", root, summary)
    return summary
