"""Callbacks shared by every training stage: the metric recorder and checkpoint-evaluate.

``Recorder`` appends to the run's metrics.jsonl (the source of truth) and mirrors records to
the tracker in batches. ``CheckpointEvaluate`` does, at each checkpoint step and in this order:
save the weights as a Hugging Face checkpoint (atomic rename), score it on the frozen ID/OOD
sets, record the metrics, then save the trainer state for resumption. A job killed anywhere
resumes from the last trainer state and redoes at most one checkpoint.

In a multi-process job the callbacks run on every rank: gathering sharded weights, scoring the
evaluation items (sharded over the ranks) and saving a sharded trainer state are collectives;
rank 0 alone writes files and records metrics. The trainer state of step N is
``resume/step=N.ckpt`` (a file, or a directory of per-rank shards under FSDP); ``resume/state.json``
names the last complete one and is replaced atomically only after every rank has written it,
so a kill at any moment leaves the previous state valid.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import lightning as L

from sweeps.models.checkpoint import save_checkpoint
from sweeps.parallel import world
from sweeps.runs import MetricsWriter, Run, atomic_write_json, ckpt_name

log = logging.getLogger(__name__)


class Recorder:
    """metrics.jsonl writer with a batched mirror to the tracker (rank 0; a no-op elsewhere)."""

    def __init__(self, run: Run, tracker: Any, push_every: int = 50):
        self.writer = MetricsWriter(run.metrics_file) if world.world().main else None
        self.tracker, self.push_every = tracker, push_every
        self.pending: list[dict[str, Any]] = []

    def record(self, step: int, metrics: dict[str, float], push: bool = False) -> None:
        if self.writer is None:
            return
        self.pending.append(self.writer.write(step, metrics))
        if push or len(self.pending) >= self.push_every:
            self.push()

    def push(self) -> None:
        self.tracker.log_metrics(self.pending)
        self.pending = []

    def close(self) -> None:
        if self.writer is not None:
            self.push()
            self.writer.close()


class StepLogger(L.Callback):
    """Logs the loss and the learning rate used at every ``log_every``-th optimiser step."""

    def __init__(self, recorder: Recorder, log_every: int, extra: Any = None):
        self.recorder, self.log_every, self.extra = recorder, log_every, extra
        self._last = -1

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = module.stage_step
        if step == self._last or step % self.log_every:
            return
        self._last = step
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        metrics = {"train/loss": float(loss), "train/lr": float(module.last_lr)}
        metrics.update(getattr(module, "step_metrics", {}) or {})
        self.recorder.record(step, metrics)


class CheckpointEvaluate(L.Callback):
    """Save HF checkpoint -> evaluate -> record -> save resume state, at each save step."""

    def __init__(
        self, run: Run, save_steps: list[int], evaluator: Any, recorder: Recorder, tokenizer: Any, eval_at_start: bool
    ):
        self.run, self.save_steps, self.evaluator = run, set(save_steps), evaluator
        self.recorder, self.tokenizer, self.eval_at_start = recorder, tokenizer, eval_at_start
        self._saved = -1
        self.last: tuple[int, dict[str, float]] | None = None  # (step, metrics) of the latest evaluation

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        if self.eval_at_start and module.stage_step == 0:
            self.checkpoint(trainer, module, 0, resume_state=False)

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = module.stage_step
        if step in self.save_steps and step != self._saved:
            self._saved = step
            self.checkpoint(trainer, module, step, resume_state=True)

    def checkpoint(self, trainer: L.Trainer, module: Any, step: int, resume_state: bool) -> None:
        path = save_checkpoint(module.model, self.tokenizer, self.run.ckpt(step))
        from sweeps.modules.preemption import check_during_evaluation

        metrics = self.evaluator(module.model, self.tokenizer, step, out_dir=path, stop_check=check_during_evaluation)
        self.recorder.record(step, metrics, push=True)
        self.last = (step, metrics)
        if world.world().main:
            log.info("step %d: %s", step, {k: round(v, 4) for k, v in metrics.items() if k.endswith("/success")})
        if resume_state:
            save_resume_state(trainer, self.run, step)


def save_resume_state(trainer: L.Trainer, run: Run, step: int) -> None:
    """Lightning checkpoint (optimizer, scheduler, loop state) of ``step`` (see module doc).

    Every rank calls it (a sharded state is written by all of them); rank 0 then points
    ``resume/state.json`` at it and removes the older states.
    """
    root = run.resume_dir
    name = f"{ckpt_name(step)}.ckpt"
    tmp = root / f".{name}.tmp"
    if world.world().main:
        _remove(tmp)
        root.mkdir(parents=True, exist_ok=True)
    world.barrier()
    # the whole state (optimizer, loops), tensors and plain containers only: fit() loads it back
    # with weights_only=True; a barrier inside: every rank has written on return
    trainer.save_checkpoint(tmp, weights_only=False)
    if world.world().main:
        _remove(root / name)
        os.replace(tmp, root / name)
        atomic_write_json(
            root / "state.json", {"step": step, "path": name, "strategy": type(trainer.strategy).__name__}
        )
        for old in root.iterdir():
            if old.name not in (name, "state.json"):
                _remove(old)
    world.barrier()


def _remove(path: Any) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def resume_state(run: Run) -> tuple[int, Any] | None:
    """(step, path) of the last complete trainer state, or None (a fresh start)."""
    f = run.resume_dir / "state.json"
    if not f.is_file():
        return None
    state = json.loads(f.read_text())
    path = run.resume_dir / state.get("path", "last.ckpt")  # "last.ckpt": states written before the sharded layout
    return (int(state["step"]), path) if path.exists() else None


def check_resume_format(run: Run, path: Any, strategy: Any) -> None:
    """A sharded state (a directory of per-rank shards) resumes only under the strategy that
    wrote it (any number of processes); one-file states resume under any file-writing strategy."""
    written = json.loads((run.resume_dir / "state.json").read_text()).get("strategy")
    if path.is_dir() and written and written != type(strategy).__name__:
        raise ValueError(
            f"{path} is a sharded trainer state written by {written}; this job runs "
            f"{type(strategy).__name__}: resume with the same trainer/strategy, or delete {run.resume_dir} "
            "to start the run over"
        )
    if path.is_dir():
        check_sharded_metadata(path / ".metadata", run.resume_dir)


# What the metadata pickle of a torch.distributed.checkpoint directory refers to; anything else
# (os.system, builtins.eval, ...) is refused before torch unpickles it.
_DCP_GLOBALS = {
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("collections", "OrderedDict"),
}


def check_sharded_metadata(path: Any, resume_dir: Any) -> None:
    """torch.distributed.checkpoint reads a sharded state's ``.metadata`` with plain
    ``pickle.load`` (its shards' objects it loads with ``weights_only=True``). Unpickle it here
    first with only DCP's metadata classes, ``torch.Size`` and dtypes allowed, so a planted
    file cannot run code; a refused or unreadable one is a one-line error naming it."""
    import pickle

    import torch

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            allowed = (
                (module, name) in _DCP_GLOBALS
                or module.startswith("torch.distributed.checkpoint.")
                or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
            )
            if not allowed:
                raise pickle.UnpicklingError(f"refers to {module}.{name}")
            return super().find_class(module, name)

    try:
        with open(path, "rb") as f:
            Restricted(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as err:
        raise ValueError(
            f"{path}: not a sharded trainer state's metadata that is safe to load ({err}); "
            f"delete {resume_dir} to start the run over"
        ) from None
