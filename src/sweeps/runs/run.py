"""A run directory's lifecycle: config signatures, atomic writes, resume state, DONE.

Where a job's directory is (``<output_dir>/<study>/<stage>/<model>/<task>/<init>/seed=<s>/``,
never a timestamp, so the same grid cell always lands in the same place) is
:mod:`sweeps.runs.layout`'s; an SFT variant (the rotation regulariser on) extends the init axis
with :func:`rotation_variant`'s name. The directory holds:

- ``config.yaml``: the resolved config; ``signature``: a hash of it without non-semantic keys
  (paths, launcher, tracking), so moving the outputs or switching launchers keeps identity;
- ``metrics.jsonl``: every metric, the source of truth (MLflow mirrors it);
- ``ckpt/step=NNNNNN/``: Hugging Face checkpoints; ``resume/``: trainer state for restarts
  (``state.json`` names the last complete one);
- ``DONE``: written last, atomically.

Same signature + DONE: skip. Same signature, no DONE: resume. Different signature: refuse.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sweeps.runs import layout

# Keys that do not change what a job computes (where it writes, how it is launched or tracked,
# how many processes share the work and how they shard it: the global batch is the same).
NON_SEMANTIC = ("paths", "tracking", "hydra", "launcher", "parent_run_id", "plan", "memory")
NON_SEMANTIC_FIELDS = (
    ("trainer", "devices"),
    ("trainer", "num_nodes"),
    ("trainer", "strategy"),
    ("trainer", "progress_every_s"),
    ("model", "gradient_checkpointing"),
)


_UMASK = os.umask(0)
os.umask(_UMASK)


class RunConflictError(RuntimeError):
    """An existing run directory holds a run of a different config."""


DONE_FIX = "delete it and re-run the same command (the job resumes from its last state and writes DONE again)"
STATE_FIX = "delete {resume} and re-run the same command to start the run over"


def read_json(path: str | os.PathLike, fix: str) -> dict[str, Any]:
    """A run's JSON file (DONE, resume/state.json) as a dict; an unreadable or torn one is a
    one-line ValueError naming the file and ``fix``."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): {fix}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a JSON object: {fix}")
    return obj


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; others in the group may read runs
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory to fill; on success it replaces ``path`` whole (readers
    see the old directory or the new one), on any failure it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def signature(resolved: dict[str, Any]) -> str:
    """Hash of the resolved config without the non-semantic keys (a job run on 8 GPUs with FSDP
    is the same job as on one, and resumes from the same directory). What a job's config means
    beyond that (an RL role is the step it names, the rotation regulariser off is plain SFT) is
    the job module's ``semantic_config``, applied before this by ``launching.job_signature``."""
    semantic = {k: v for k, v in resolved.items() if k not in NON_SEMANTIC}
    for group, key in NON_SEMANTIC_FIELDS:
        if isinstance(semantic.get(group), dict) and key in semantic[group]:
            semantic[group] = {k: v for k, v in semantic[group].items() if k != key}
    blob = json.dumps(semantic, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def rotation_variant(reg: Any) -> str:
    """The run-directory name of an ``algo.rotation_reg`` setting: ``""`` when off (absent or
    λ = 0), else ``rotreg_<variant>_k<k>_lam<λ>`` (``_r<refresh>`` added for ``angle``)."""
    if reg is None or not reg.get("lam"):
        return ""
    name = f"rotreg_{reg.get('variant', 'block')}_k{int(reg.get('k'))}_lam{float(reg.get('lam')):g}"
    return name + (f"_r{int(reg.get('refresh'))}" if reg.get("variant") == "angle" else "")


class Run:
    """One job's directory and the files that make it skippable and resumable."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # --- identity ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return (self.path / layout.DONE).is_file()

    def stored_signature(self) -> str | None:
        f = self.path / layout.SIGNATURE
        return f.read_text().strip() if f.is_file() else None

    def claim(self, sig: str, config_yaml: str) -> str:
        """Bind this directory to ``sig``. Returns "skip", "resume" or "new"."""
        stored = self.stored_signature()
        if stored is not None and stored != sig:
            raise RunConflictError(
                f"run directory {self.path} holds a run with signature {stored}, this config has {sig}: "
                f"use another paths.output_dir or study name, or delete the directory"
            )
        if stored == sig:  # a torn file here: one line naming it
            for f, fix in ((self.path / layout.DONE, DONE_FIX), (self.resume_dir / "state.json", STATE_FIX)):
                if f.is_file():
                    read_json(f, fix.format(resume=self.resume_dir))
        if stored == sig and self.done:
            return "skip"
        state = "resume" if stored == sig else "new"
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / layout.FAILED).unlink(missing_ok=True)  # an earlier attempt's; this one starts now
        atomic_write_text(self.path / layout.CONFIG, config_yaml)
        atomic_write_text(self.path / layout.SIGNATURE, sig + "\n")
        return state

    def mark_done(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / layout.DONE, summary)

    def mark_failed(self, error: BaseException) -> None:
        """``FAILED`` with the error's first line (the study driver counts it; a re-run resumes)."""
        from sweeps.cli import first_line

        name = type(error).__name__
        atomic_write_json(
            self.path / layout.FAILED, {"error": f"{name}: {first_line(error, 10_000)}" if str(error).strip() else name}
        )

    # --- checkpoints ---------------------------------------------------------------
    @property
    def ckpt_root(self) -> Path:
        return self.path / layout.CKPT

    def ckpt(self, step: int) -> Path:
        return layout.ckpt(self.path, step)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (renamed into place) as (step, path), by step."""
        return layout.checkpoints(self.path)

    @property
    def resume_dir(self) -> Path:
        """Trainer states for restarts: ``step=N.ckpt`` and the ``state.json`` naming the last."""
        return self.path / layout.RESUME

    # --- metrics -------------------------------------------------------------------
    @property
    def metrics_file(self) -> Path:
        return self.path / layout.METRICS

    def read_metrics(self) -> list[dict[str, Any]]:
        return list(iter_metrics(self.metrics_file))

    def truncate_metrics(self, keep: callable) -> None:
        """Rewrite metrics.jsonl atomically keeping the records ``keep(rec)`` accepts."""
        if self.metrics_file.is_file():
            kept = [json.dumps(r, sort_keys=True) for r in self.read_metrics() if keep(r)]
            atomic_write_text(self.metrics_file, "".join(line + "\n" for line in kept))


def iter_metrics(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Records of a metrics.jsonl; a torn last line (a crash mid-append) is ignored."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), int):  # a record, not a fragment
                yield rec


class MetricsWriter:
    """Appends ``{"step": s, "key": value, ...}`` records to metrics.jsonl, one line each."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")

    def write(self, step: int, metrics: dict[str, float], flush: bool = True) -> dict[str, Any]:
        rec = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(rec, sort_keys=True) + "\n")
        if flush:
            self._fh.flush()
        return rec

    def close(self) -> None:
        self._fh.close()


def _jsonable(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def latest_values(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The last value of every key over a stream of metric records."""
    out: dict[str, Any] = {}
    for r in records:
        out.update(r)
    return out
