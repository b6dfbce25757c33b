"""Callbacks shared by every training stage: the metric recorder and checkpoint-evaluate.

``Recorder`` appends to the run's metrics.jsonl (the source of truth) and mirrors records to
the tracker in batches. ``CheckpointEvaluate`` does, at each checkpoint step and in this order:
save the weights as a Hugging Face checkpoint (atomic rename), score it on the frozen ID/OOD
sets, record the metrics, then save the trainer state for resumption (atomic rename). A job
killed anywhere resumes from the last trainer state and redoes at most one checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import lightning as L

from sweeps.models.checkpoint import save_checkpoint
from sweeps.runs import MetricsWriter, Run, atomic_write_json

log = logging.getLogger(__name__)


class Recorder:
    """metrics.jsonl writer with a batched mirror to the tracker."""

    def __init__(self, run: Run, tracker: Any, push_every: int = 50):
        self.writer = MetricsWriter(run.metrics_file)
        self.tracker, self.push_every = tracker, push_every
        self.pending: list[dict[str, Any]] = []

    def record(self, step: int, metrics: dict[str, float], push: bool = False) -> None:
        self.pending.append(self.writer.write(step, metrics))
        if push or len(self.pending) >= self.push_every:
            self.push()

    def push(self) -> None:
        self.tracker.log_metrics(self.pending)
        self.pending = []

    def close(self) -> None:
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

    def __init__(self, run: Run, save_steps: list[int], evaluator: Any, recorder: Recorder,
                 tokenizer: Any, eval_at_start: bool):
        self.run, self.save_steps, self.evaluator = run, set(save_steps), evaluator
        self.recorder, self.tokenizer, self.eval_at_start = recorder, tokenizer, eval_at_start
        self._saved = -1

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
        metrics = self.evaluator(module.model, self.tokenizer, step, out_dir=path)
        self.recorder.record(step, metrics, push=True)
        log.info("step %d: %s", step, {k: round(v, 4) for k, v in metrics.items() if k.endswith("/success")})
        if resume_state:
            save_resume_state(trainer, self.run, step)


def save_resume_state(trainer: L.Trainer, run: Run, step: int) -> None:
    """Lightning checkpoint (optimizer, scheduler, loop state) at resume/last.ckpt, atomically."""
    target = run.resume_file
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    trainer.save_checkpoint(tmp)
    os.replace(tmp, target)
    atomic_write_json(target.with_name("state.json"), {"step": step})


def read_resume_step(run: Run) -> int | None:
    f = run.resume_file.with_name("state.json")
    if not (f.is_file() and run.resume_file.is_file()):
        return None
    return int(json.loads(f.read_text())["step"])
