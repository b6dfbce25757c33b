"""Push run directories into MLflow, idempotently (the command: ``sweeps-sync``, :mod:`sweeps.cli.sync`).

A run directory is any folder with config.yaml and metrics.jsonl. Its ``mlflow.json`` says
which MLflow run mirrors it and how many records were pushed; sync pushes only the rest (or
creates the run when the store has none), so running it twice changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def sync_run(run_path: Path, uri: str | None = None) -> int:
    """Mirror one run directory; returns how many metric records were pushed now."""
    from sweeps.jobs.common import axis_tags
    from sweeps.runs import Run, layout
    from sweeps.tracking.mlflow_tracker import MlflowTracker

    cfg = OmegaConf.load(run_path / "config.yaml")
    uri = uri or cfg.tracking.get("uri")
    if not uri:
        raise ValueError(f"{run_path}/config.yaml has no tracking.uri: pass --uri")
    run = Run(run_path)
    tracker = MlflowTracker(uri, cfg.tracking.get("experiment") or cfg.study, cfg.get("parent_run_id"), warn=False)
    init = layout.init_of(run_path)
    tracker.start(
        run_path, OmegaConf.to_container(cfg), axis_tags(cfg, cfg.algo.name, init), OmegaConf.to_yaml(cfg), reopen=False
    )
    if not tracker.enabled:
        raise RuntimeError(f"could not mirror {run_path} into the MLflow store {uri} ({tracker.error})")
    records = run.read_metrics()
    todo = records[tracker.pushed :]
    tracker.log_metrics(todo)  # less what a lost reply had pushed already
    if run.done and tracker.status != "FINISHED":
        tracker.finish("FINISHED")
    if not tracker.enabled:
        raise RuntimeError(f"could not mirror {run_path} into the MLflow store {uri} ({tracker.error})")
    return len(todo)


def find_runs(root: Path) -> list[Path]:
    from sweeps.runs import layout

    return layout.find_runs_below(root)
