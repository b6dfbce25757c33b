"""A tracking server that is down costs a job seconds and one warning line, and ``sweeps-sync``
afterwards brings MLflow to what a job that had the server all along left there (slow: a real
``mlflow server`` on a SQLite store and a free port, stopped and started again by the tests).

Equal means: the same params, tags, status, run name, experiment, artifacts (config.yaml) and
every metric history as (key, step, value) points. Run ids, timestamps and what names the run
directory (the ``paths.output_dir`` param, the ``sweeps.run_dir`` tag, paths inside config.yaml)
legitimately differ: each job has its own output directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
JOB = [
    "algo=sft",
    "model=tiny",
    "task=general_points_compact",
    "trainer=smoke",
    "eval.size=8",
    "task.max_attempts=1",
    "task.max_new_tokens=16",
    "tracking=mlflow_server",
    "seed=0",
]
RUN = Path("default/sft/tiny/general_points_compact/base/seed=0")
WARNING = "MLflow mirror to"  # the tracker's one warning
OUTAGE_COST_S = 30.0  # a down server may cost a job at most this much
RUN_DIR_PARAMS, RUN_DIR_TAGS = {"paths.output_dir"}, {"sweeps.run_dir"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mlflow server`` on one SQLite store and port; stop() SIGKILLs its process group (a crash),
    start() brings it back on the same store and port."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> float:
        if self.proc is not None:
            return 0.0
        t0 = time.monotonic()
        log = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root}/mlflow.db",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        log.close()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError("mlflow server exited:\n" + (self.root / "server.log").read_text()[-3000:])
            try:
                with opener.open(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"mlflow server not answering on {self.uri} after {timeout} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("mlflow_server"))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def train_cmd(out: Path, uri: str) -> list[str]:
    return [str(BIN / "sweeps-train"), *JOB, f"tracking.uri={uri}", f"paths.output_dir={out}"]


def train(out: Path, uri: str) -> tuple[str, float]:
    t0 = time.monotonic()
    res = subprocess.run(train_cmd(out, uri), capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout + res.stderr, elapsed


def sync(run: Path) -> tuple[str, float]:
    t0 = time.monotonic()
    res = subprocess.run([str(BIN / "sweeps-sync"), str(run)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout + res.stderr, time.monotonic() - t0


def run_id(run: Path) -> str:
    return json.loads((run / "mlflow.json").read_text())["run_id"]


def pushed(run: Path) -> int:
    try:
        return json.loads((run / "mlflow.json").read_text())["pushed"]
    except (OSError, ValueError):
        return 0


def content(client, rid: str, out: Path, tmp: Path) -> dict:
    """What must be equal between two mirrors of the same job (see the module docstring)."""
    r = client.get_run(rid)
    dst = tmp / f"artifacts-{rid}"
    dst.mkdir()
    config = Path(client.download_artifacts(rid, "config.yaml", str(dst))).read_text()
    return {
        "params": {k: v for k, v in r.data.params.items() if k not in RUN_DIR_PARAMS},
        "tags": {k: v for k, v in r.data.tags.items() if k not in RUN_DIR_TAGS},
        "status": r.info.status,
        "run_name": r.info.run_name,
        "experiment": r.info.experiment_id,
        "artifacts": sorted(f.path for f in client.list_artifacts(rid)),
        "config.yaml": config.replace(str(out), "<output_dir>"),
        "metrics": {k: sorted((m.step, m.value) for m in client.get_metric_history(rid, k)) for k in r.data.metrics},
    }


def snapshot(client, rid: str, run: Path) -> dict:
    """Everything a sync could change, timestamps included."""
    r = client.get_run(rid)
    return {
        "info": (r.info.status, r.info.start_time, r.info.end_time, r.info.lifecycle_stage),
        "params": r.data.params,
        "tags": r.data.tags,
        "metrics": {
            k: sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(rid, k)) for k in r.data.metrics
        },
        "artifacts": sorted(f.path for f in client.list_artifacts(rid)),
        "runs": len(client.search_runs([r.info.experiment_id], max_results=1000)),
        "mlflow.json": (run / "mlflow.json").read_text(),
    }


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    """The job with the server up all along: (output dir, MLflow run id, seconds)."""
    out = tmp_path_factory.mktemp("with_server")
    server.start()
    output, elapsed = train(out, server.uri)
    assert WARNING not in output
    print(f"\njob with the server up: {elapsed:.1f} s")
    return out, run_id(out / RUN), elapsed


def check_synced_like_reference(server, reference, out: Path, tmp: Path) -> None:
    from mlflow.tracking import MlflowClient

    run = out / RUN
    output, elapsed = sync(run)
    print(f"sweeps-sync: {elapsed:.1f} s")
    client = MlflowClient(server.uri)
    ref_out, ref_id, _ = reference
    assert run_id(run) != ref_id
    assert content(client, run_id(run), out, tmp) == content(client, ref_id, ref_out, tmp)
    before = snapshot(client, run_id(run), run)
    output, elapsed = sync(run)  # a second sync changes nothing
    print(f"second sweeps-sync: {elapsed:.1f} s")
    assert "0 new records" in output
    assert snapshot(client, run_id(run), run) == before


def test_job_with_the_server_down_finishes_warns_once_and_syncs_later(server, reference, tmp_path):
    out, run = tmp_path / "server_down", tmp_path / "server_down" / RUN
    server.stop()
    output, elapsed = train(out, server.uri)
    print(f"job with the server down: {elapsed:.1f} s (with it up: {reference[2]:.1f} s)")
    assert (run / "DONE").is_file()
    warnings = [line for line in output.splitlines() if WARNING in line]
    assert len(warnings) == 1, output[-3000:]
    print(warnings[0])
    assert server.uri in warnings[0] and f"`sweeps-sync {run}`" in warnings[0]
    assert "Traceback" not in output and "Retrying" not in output, output[-3000:]
    assert elapsed - reference[2] < OUTAGE_COST_S
    assert not (run / "mlflow.json").exists()  # no MLflow run was created
    print(f"mlflow server start: {server.start():.1f} s")
    check_synced_like_reference(server, reference, out, tmp_path)


def test_server_dying_mid_job_then_sync(server, reference, tmp_path):
    out, run = tmp_path / "server_dies", tmp_path / "server_dies" / RUN
    server.start()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        train_cmd(out, server.uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        while proc.poll() is None and pushed(run) == 0:  # the first checkpoint's records are in
            time.sleep(0.02)
        server.stop()
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    elapsed = time.monotonic() - t0
    print(f"job whose server died after the first checkpoint: {elapsed:.1f} s")
    assert proc.returncode == 0, output[-3000:]
    assert (run / "DONE").is_file()
    warnings = [line for line in output.splitlines() if WARNING in line]
    assert len(warnings) == 1, output[-3000:]
    print(warnings[0])
    assert "Traceback" not in output and "Retrying" not in output, output[-3000:]
    assert elapsed - reference[2] < OUTAGE_COST_S
    state = json.loads((run / "mlflow.json").read_text())
    assert 0 < state["pushed"] < len((run / "metrics.jsonl").read_text().splitlines())
    print(f"mlflow server start: {server.start():.1f} s")
    check_synced_like_reference(server, reference, out, tmp_path)


def test_resumed_mirror_and_sync_push_each_point_once(server, tmp_path):
    """Bookkeeping behind the above: a job's first push after a resume also pushes what a killed
    attempt wrote but never pushed; a sync after a push whose reply was lost (mlflow.json counts
    fewer records than MLflow holds) does not push them twice."""
    from mlflow.tracking import MlflowClient

    from sweeps.runs import MetricsWriter, Run
    from sweeps.tracking.mlflow_tracker import MlflowTracker
    from sweeps.tracking.sync import sync_run

    server.start()
    store = server.uri
    run = Run(tmp_path / "run")
    run.claim("sig", "")
    (run.path / "config.yaml").write_text(
        "study: s\nseed: 0\nparent_run_id: null\nmodel: {name: tiny}\ntask: {name: t}\nalgo: {name: sft}\n"
        f"tracking: {{uri: '{store}', experiment: e}}\n"
    )
    writer = MetricsWriter(run.metrics_file)
    first = MlflowTracker(store, "e")
    first.start(run.path, {}, {}, "")
    first.log_metrics([writer.write(s, {"train/loss": 1.0 / (s + 1)}) for s in range(3)])
    for s in range(3, 5):  # written, then the attempt is killed unpushed
        writer.write(s, {"train/loss": 1.0 / (s + 1)})
    second = MlflowTracker(store, "e")  # the resumed attempt
    second.start(run.path, {}, {}, "")
    second.log_metrics([writer.write(5, {"train/loss": 1.0 / 6})])
    second.log_metrics([writer.write(6, {"train/loss": 1.0 / 7})])
    assert second.pushed == 7
    state = json.loads((run.path / "mlflow.json").read_text())
    (run.path / "mlflow.json").write_text(json.dumps({**state, "pushed": 4}))  # a reply lost
    assert sync_run(run.path) == 3
    hist = MlflowClient(store).get_metric_history(second.run_id, "train/loss")
    assert sorted(m.step for m in hist) == list(range(7))
    assert sync_run(run.path) == 0
