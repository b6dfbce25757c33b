"""MLflow mirror of a run directory, which stays the source of truth.

One MLflow run per job: the flattened resolved config as params (secrets dropped), a tag per
grid axis, step metrics and the resolved config as an artifact. Every call is guarded: a
tracking failure logs a warning, disables the mirror and never kills the training job. What was
mirrored is recorded in ``<run_dir>/mlflow.json`` (run id and how many metrics.jsonl records
were pushed), so ``sweeps-sync`` can later push the rest, idempotently.

Concurrency: the experiment is created with retries (many jobs starting together against one
SQLite file race on it), and every write is retried with exponential back-off on "database is
locked". Many concurrent writers should use a tracking server (``tracking=mlflow_server``).

Outage: against a tracking server the job checks first that the server accepts connections
(a few seconds at most), and MLflow's own HTTP retries are bounded (:data:`HTTP_LIMITS`, unless
the environment sets them: MLflow's defaults retry one call for about 4 minutes), so a stopped
server costs a job seconds, not minutes. The first failure disables the mirror with one warning
naming the URI and the ``sweeps-sync <run dir>`` that pushes the records later.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sweeps.runs import atomic_write_json
from sweeps.secrets import is_secret_name, redact_text

log = logging.getLogger(__name__)
T = TypeVar("T")

# MLflow's HTTP client retries a failed call 7 times with back-off factor 2 and a 120 s timeout
# (about 4 minutes against a stopped server, 7 retry warnings a call); a job's mirror uses these
# unless the environment sets them: at most ~8 s of back-off and 15 s a request.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
CONNECT_TIMEOUT = 5.0  # seconds: the server check at start

MAX_PARAM_LEN = 6000


def flatten(d: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict -> {"a.b.c": "value"} with secrets removed and long values truncated."""
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if is_secret_name(k):  # hf_token, *_password, api_key; not max_new_tokens or pad_token_id
                continue
            out.update(flatten(v, key))
    else:
        out[prefix] = json.dumps(d) if isinstance(d, (list, tuple)) else str(d)
        out[prefix] = out[prefix][:MAX_PARAM_LEN]
    return out


def retry(fn: Callable[[], T], attempts: int = 6, base: float = 0.2) -> T:
    """Call ``fn`` with exponential back-off and jitter (SQLite 'database is locked' races),
    under :func:`bounded_http`. A tracking server that does not answer fails at once: MLflow's
    HTTP client has retried with back-off already (retrying that again made one call to a
    stopped server take about 24 minutes)."""
    for i in range(attempts):
        try:
            with bounded_http():
                return fn()
        except Exception as err:  # noqa: BLE001 - any backend error is retried, then re-raised
            if i == attempts - 1 or no_answer(err):
                raise
            time.sleep(base * 2**i * (1 + random.random()))
    raise AssertionError("unreachable")


def no_answer(err: BaseException) -> bool:
    """Whether ``err`` says a tracking server did not answer (after MLflow's own HTTP retries)."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return bool(re.match(r"API request to \S+ failed with (timeout )?exception", str(err).strip()))


@contextmanager
def bounded_http() -> Iterator[None]:
    """:data:`HTTP_LIMITS` for MLflow's HTTP client (where the environment does not set them) and
    urllib3's per-retry warnings silenced, for the duration of one mirror call."""
    added = [k for k in HTTP_LIMITS if k not in os.environ]
    for k in added:
        os.environ[k] = HTTP_LIMITS[k]
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool_log.setLevel(level)
        for k in added:
            os.environ.pop(k, None)


def check_server(uri: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise ``ConnectionError`` quickly when an http(s) tracking URI accepts no connection."""
    from urllib.parse import urlparse

    u = urlparse(uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        return
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"no connection to {u.hostname}:{port} ({err.strerror or err})") from err


def _first_line(err: BaseException, limit: int = 200) -> str:
    """A short account of ``err``: MLflow's HTTP failures ("API request to <url> failed with
    exception HTTPConnectionPool(...): Max retries exceeded ...") as the API path and the cause."""
    from sweeps.cli import first_line

    full = str(err).strip()
    text = first_line(err, 10_000)
    api = re.match(r"API request to \S*?(/api/\S+) failed with (timeout )?exception", text)
    if api:
        cause = (
            "connection refused"
            if "Connection refused" in full
            else "timed out"
            if "timed out" in full.lower() or api.group(2)
            else "no connection"
            if "ConnectionError" in full or "Max retries" in full
            else None
        )
        if cause:
            text = f"{api.group(1)}: {cause}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MlflowTracker:
    """Mirrors one run directory into one MLflow run (see module docstring)."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str | None = None, warn: bool = True):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.warn = warn  # False: no warning when disabled, the caller reports ``error``
        self.run_id: str | None = None
        self.pushed = 0
        self.enabled = True
        self.error: str | None = None  # what disabled the mirror
        self.resumed = False  # start() found the MLflow run of a previous attempt
        self.status: str | None = None  # the MLflow run's status, as this tracker last knew it
        self._aligned = False  # the first log_metrics checked the pushed prefix
        self._client = None
        self._state_file: Path | None = None
        # over HTTP, MLflow's client retries (bounded, see HTTP_LIMITS); retry()'s back-off is for
        # SQLite's "database is locked"
        self._attempts = 1 if str(tracking_uri).startswith(("http://", "https://")) else 6

    # --- guarded plumbing ------------------------------------------------------------
    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return retry(fn, attempts=self._attempts)
        except Exception as err:  # noqa: BLE001
            self.enabled = False
            self.error = f"{what}: {_first_line(err)}"
            if self.warn:
                run_dir = self._state_file.parent if self._state_file is not None else "<run dir>"
                log.warning(
                    "MLflow mirror to %s stopped (%s); the job goes on, its records stay in "
                    "metrics.jsonl: `sweeps-sync %s` pushes them later",
                    redact_text(self.tracking_uri),
                    self.error,
                    run_dir,
                )
            return None

    def _save_state(self) -> None:
        if self._state_file is not None and self.run_id:
            atomic_write_json(
                self._state_file,
                {"run_id": self.run_id, "pushed": self.pushed, "tracking_uri": redact_text(self.tracking_uri)},
            )

    # --- interface ---------------------------------------------------------------------
    def start(
        self, run_dir: Any, params: dict[str, Any], tags: dict[str, str], config_yaml: str, reopen: bool = True
    ) -> None:
        """Create the MLflow run, or take up the one mlflow.json names (``RUNNING`` again unless
        ``reopen`` is false: ``sweeps-sync`` leaves a finished run's status and end time alone)."""
        run_dir = Path(run_dir).resolve()
        self._state_file = run_dir / "mlflow.json"
        self._guard("start", lambda: self._start(run_dir, params, tags, config_yaml, reopen))

    def _start(
        self, run_dir: Path, params: dict[str, Any], tags: dict[str, str], config_yaml: str, reopen: bool
    ) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        check_server(self.tracking_uri)
        init_store(self.tracking_uri)
        client = self._client = MlflowClient(self.tracking_uri)
        prev = json.loads(self._state_file.read_text()) if self._state_file.is_file() else {}
        same_store = prev.get("run_id") and prev.get("tracking_uri") == redact_text(self.tracking_uri)
        found = _existing(client, prev["run_id"]) if same_store else None
        if found is not None:
            self.run_id, self.pushed = prev["run_id"], int(prev.get("pushed", 0))
            self.resumed, self.status = True, found.info.status
            if reopen:
                client.update_run(self.run_id, status="RUNNING")
                self.status = "RUNNING"
            return
        exp_id = ensure_experiment(client, self.experiment)
        all_tags = {**tags, "sweeps.run_dir": str(run_dir)}
        if self.parent_run_id:
            all_tags["mlflow.parentRunId"] = self.parent_run_id
        run = client.create_run(exp_id, tags=all_tags, run_name=tags.get("sweeps.run_name"))
        self.run_id, self.status = run.info.run_id, run.info.status
        flat = flatten(params)
        items = [Param(k, v) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            client.log_batch(self.run_id, params=items[i : i + 100])
        client.log_text(self.run_id, config_yaml, "config.yaml")
        self.pushed = 0
        self._save_state()

    def log_metrics(self, records: list[dict[str, Any]]) -> None:
        """Push the newest metric records (dicts with "step"): the last ``len(records)`` lines
        of metrics.jsonl, after the ``pushed`` ones (``sweeps-sync`` passes all the rest).

        The first push after start() also pushes the lines a previous attempt wrote but never
        pushed (between mlflow.json's count and these), so ``pushed`` stays the length of a
        pushed prefix of metrics.jsonl; into an MLflow run of a previous attempt it leaves out
        the points the run holds already (a push whose reply was lost, the server or the job
        dying mid-request or before mlflow.json was written, is not pushed twice)."""
        if not records or self.run_id is None or not self.enabled:
            return
        held = None
        if not self._aligned:
            self._aligned = True
            records = self._with_gap(records)
            held = self._held(records)
        ok = self._guard("log_metrics", lambda: log_records(self._client, self.run_id, records, held))
        if ok:
            self.pushed += len(records)
            self._save_state()

    def _with_gap(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from sweeps.runs import iter_metrics

        if self._state_file is None or not (self._state_file.parent / "metrics.jsonl").is_file():
            return records
        on_file = list(iter_metrics(self._state_file.parent / "metrics.jsonl"))
        before = len(on_file) - len(records)
        if self.pushed < before and [r["step"] for r in on_file[before:]] == [r["step"] for r in records]:
            log.info("MLflow: pushing %d record(s) a previous attempt did not", before - self.pushed)
            return on_file[self.pushed :]
        return records

    def _held(self, records: list[dict[str, Any]]) -> Callable[[], Counter] | None:
        """For a resumed MLflow run: (key, step, value) points it holds among ``records``' keys."""
        if not self.resumed:
            return None
        keys = sorted({k for r in records for k in r if k != "step"})

        def held() -> Counter:
            return Counter(
                (m.key, m.step, m.value) for k in keys for m in self._client.get_metric_history(self.run_id, k)
            )

        return held

    def log_artifact(self, path: Any) -> None:
        if self.run_id is not None:
            self._guard("log_artifact", lambda: self._client.log_artifact(self.run_id, str(path)))

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        if self._guard("finish", lambda: self._client.set_terminated(self.run_id, status=status) or True):
            self.status = status


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

    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _existing(client: Any, run_id: str) -> Any:
    """The MLflow run ``run_id``, or None when the store has none or it was deleted (any other
    failure, the server not answering, raises: a new run would duplicate the old one)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return None if run.info.lifecycle_stage == "deleted" else run


def artifact_root(uri: str | None) -> str | None:
    """Artifacts of an embedded SQLite store live beside it (``<dir>/mlartifacts``), not in a
    ``./mlruns`` under whatever directory a job happened to start in."""
    if not uri or not uri.startswith("sqlite:///"):
        return None  # a tracking server decides
    return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()


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


def log_records(
    client: Any, run_id: str, records: list[dict[str, Any]], held: Callable[[], Counter] | None = None
) -> bool:
    """Push ``records``' numeric values (one timestamp for the call, so MLflow drops a retried
    batch's duplicates), less the points ``held()`` says the run has already."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), now, int(r["step"]))
        for r in records
        for k, v in r.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    ]
    if held is not None:
        have = held()
        keep = []
        for m in metrics:
            point = (m.key, m.step, m.value)
            if have[point] > 0:
                have[point] -= 1
            else:
                keep.append(m)
        metrics = keep
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    return True


def mlflow(cfg: Any) -> MlflowTracker:
    """Builder named by ``conf/tracking/*.yaml``."""
    return MlflowTracker(cfg.tracking.uri, cfg.tracking.experiment or cfg.study, cfg.get("parent_run_id"))
