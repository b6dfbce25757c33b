"""MLflow mirror of a run directory, which stays the source of truth.

One MLflow run per job: the flattened resolved config as params (secrets dropped), a tag per
grid axis, step metrics and the resolved config as an artifact. Every call is guarded: a
tracking failure logs a warning, disables the mirror and never kills the training job. What was
mirrored is recorded in ``<run_dir>/mlflow.json`` (run id and how many metrics.jsonl records
were pushed), so ``sweeps-sync`` can later push the rest, idempotently.

Concurrency: the experiment is created with retries (many jobs starting together against one
SQLite file race on it), and every write is retried with exponential back-off on "database is
locked". Many concurrent writers should use a tracking server (``tracking=mlflow_server``).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from sweeps.runs import atomic_write_json

log = logging.getLogger(__name__)
T = TypeVar("T")

SECRET = re.compile(r"(token|password|passwd|secret|api_key|apikey|credential)", re.I)
MAX_PARAM_LEN = 6000


def flatten(d: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict -> {"a.b.c": "value"} with secrets removed and long values truncated."""
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if SECRET.search(str(k)):
                continue
            out.update(flatten(v, key))
    else:
        out[prefix] = json.dumps(d) if isinstance(d, (list, tuple)) else str(d)
        out[prefix] = out[prefix][:MAX_PARAM_LEN]
    return out


def retry(fn: Callable[[], T], attempts: int = 6, base: float = 0.2) -> T:
    """Call ``fn`` with exponential back-off and jitter (SQLite 'database is locked' races)."""
    for i in range(attempts):
        try:
            return fn()
        except Exception:  # noqa: BLE001 - any backend error is retried, then re-raised
            if i == attempts - 1:
                raise
            time.sleep(base * 2**i * (1 + random.random()))
    raise AssertionError("unreachable")


class MlflowTracker:
    """Mirrors one run directory into one MLflow run (see module docstring)."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str | None = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        self.pushed = 0
        self.enabled = True
        self._client = None
        self._state_file: Path | None = None

    # --- guarded plumbing ------------------------------------------------------------
    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return retry(fn)
        except Exception as err:  # noqa: BLE001
            self.enabled = False
            log.warning("MLflow %s failed (%s); metrics stay in metrics.jsonl, run sweeps-sync later", what, err)
            return None

    def _save_state(self) -> None:
        if self._state_file is not None and self.run_id:
            atomic_write_json(self._state_file, {"run_id": self.run_id, "pushed": self.pushed,
                                                 "tracking_uri": self.tracking_uri})

    # --- interface ---------------------------------------------------------------------
    def start(self, run_dir: Any, params: dict[str, Any], tags: dict[str, str], config_yaml: str) -> None:
        self._state_file = Path(run_dir) / "mlflow.json"
        self._guard("start", lambda: self._start(Path(run_dir), params, tags, config_yaml))

    def _start(self, run_dir: Path, params: dict[str, Any], tags: dict[str, str], config_yaml: str) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        init_store(self.tracking_uri)
        client = self._client = MlflowClient(self.tracking_uri)
        prev = json.loads(self._state_file.read_text()) if self._state_file.is_file() else {}
        if prev.get("run_id") and prev.get("tracking_uri") == self.tracking_uri and _exists(client, prev["run_id"]):
            self.run_id, self.pushed = prev["run_id"], int(prev.get("pushed", 0))
            client.update_run(self.run_id, status="RUNNING")
            return
        exp_id = ensure_experiment(client, self.experiment)
        all_tags = {**tags, "sweeps.run_dir": str(run_dir)}
        if self.parent_run_id:
            all_tags["mlflow.parentRunId"] = self.parent_run_id
        run = client.create_run(exp_id, tags=all_tags, run_name=tags.get("sweeps.run_name"))
        self.run_id = run.info.run_id
        flat = flatten(params)
        items = [Param(k, v) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            client.log_batch(self.run_id, params=items[i : i + 100])
        client.log_text(self.run_id, config_yaml, "config.yaml")
        self.pushed = 0
        self._save_state()

    def log_metrics(self, records: list[dict[str, Any]]) -> None:
        """Push metric records (dicts with "step") that follow the already-pushed prefix."""
        if not records or self.run_id is None:
            return
        ok = self._guard("log_metrics", lambda: log_records(self._client, self.run_id, records))
        if ok:
            self.pushed += len(records)
            self._save_state()

    def log_artifact(self, path: Any) -> None:
        if self.run_id is not None:
            self._guard("log_artifact", lambda: self._client.log_artifact(self.run_id, str(path)))

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self._guard("finish", lambda: self._client.set_terminated(self.run_id, status=status))


def init_store(uri: str) -> None:
    """Create an embedded SQLite store's tables once, under a file lock.

    MLflow migrates a new SQLite database on first use; two processes doing it at once leave
    it broken ("table _alembic_tmp_experiments already exists"). Jobs of a multirun start
    together, so the first one to take the lock creates the tables and the others wait.
    """
    if not uri.startswith("sqlite:///"):
        return
    import fcntl

    from mlflow.tracking import MlflowClient

    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _exists(client: Any, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except Exception:  # noqa: BLE001
        return False


def artifact_root(uri: str | None) -> str | None:
    """Artifacts of an embedded SQLite store live beside it (``<dir>/mlartifacts``), not in a
    ``./mlruns`` under whatever directory a job happened to start in."""
    if not uri or not uri.startswith("sqlite:///"):
        return None                    # a tracking server decides
    return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()


def ensure_experiment(client: Any, name: str) -> str:
    """Get or create an experiment by name, tolerating a concurrent creator."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(getattr(client, "_tracking_client", client).tracking_uri)
    try:
        return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except Exception:  # noqa: BLE001 - someone else created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def log_records(client: Any, run_id: str, records: list[dict[str, Any]]) -> bool:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), now, int(r["step"]))
        for r in records
        for k, v in r.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    ]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    return True


def mlflow(cfg: Any) -> MlflowTracker:
    """Builder named by ``conf/tracking/*.yaml``."""
    return MlflowTracker(cfg.tracking.uri, cfg.tracking.experiment or cfg.study, cfg.get("parent_run_id"))
