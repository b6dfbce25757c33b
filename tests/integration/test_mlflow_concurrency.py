"""Eight jobs writing to one embedded SQLite store at once lose no run and no metric (slow)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
N_JOBS, N_RECORDS = 8, 60


def job(uri: str, run_dir: str, seed: int, start) -> None:
    from sweeps.runs import MetricsWriter, Run
    from sweeps.tracking.mlflow_tracker import MlflowTracker

    run = Run(run_dir)
    run.claim(f"sig{seed}", "")
    start.wait()  # all eight start together
    tracker = MlflowTracker(uri, "concurrency")
    tracker.start(run.path, {"seed": seed}, {"sweeps.seed": str(seed)}, "")
    writer = MetricsWriter(run.metrics_file)
    for step in range(N_RECORDS):
        tracker.log_metrics([writer.write(step, {"train/loss": 1.0 / (step + 1), "seed": float(seed)})])
    tracker.finish()
    assert tracker.enabled, "the mirror gave up"


def test_eight_concurrent_writers_lose_nothing(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"  # not created yet: the first migration races too
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=job, args=(uri, str(tmp_path / f"run{i}"), i, start)) for i in range(N_JOBS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * N_JOBS
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("concurrency").experiment_id])
    assert sorted(r.data.tags["sweeps.seed"] for r in runs) == [str(i) for i in range(N_JOBS)]
    for r in runs:
        assert len(client.get_metric_history(r.info.run_id, "train/loss")) == N_RECORDS
        assert r.info.status == "FINISHED"
