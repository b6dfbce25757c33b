"""The tracker interface and the null tracker used with ``tracking=none``."""

from __future__ import annotations

from typing import Any


class NullTracker:
    """Same methods as the MLflow tracker, doing nothing: loops never check ``if tracker``."""

    run_id: str | None = None

    def start(self, run_dir: Any, params: dict[str, Any], tags: dict[str, str], config_yaml: str) -> None:
        pass

    def log_metrics(self, records: list[dict[str, Any]]) -> None:
        pass

    def log_artifact(self, path: Any) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass


def null(cfg: Any = None) -> NullTracker:
    return NullTracker()
