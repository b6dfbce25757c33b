"""The job's progress callback (rank 0): a tqdm bar on a terminal, periodic log lines elsewhere,
and ``progress.json`` for the study driver (see :mod:`sweeps.progress`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L

from sweeps.parallel import world
from sweeps.progress import bar, duration, interactive
from sweeps.runs import Run, atomic_write_json

log = logging.getLogger("sweeps.progress")


class Progress(L.Callback):
    def __init__(self, run: Run, name: str, max_steps: int, every_s: float, evaluations: Any = None):
        self.run, self.name, self.max_steps, self.every_s = run, name, max_steps, every_s
        self.evaluations = evaluations  # the CheckpointEvaluate callback (its .last)
        self.main = world.world().main
        self.bar: Any = None
        self._last_step, self._last_report = -1, 0.0

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        self.t0, self.start = time.monotonic(), module.stage_step
        if self.main and interactive():
            self.bar = bar(self.max_steps, self.start, self.name, "step")

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = module.stage_step
        if not self.main or step == self._last_step:
            return
        self._last_step = step
        loss = (getattr(module, "step_metrics", None) or {}).get("train/loss")
        if loss is None and outputs is not None:
            loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(self._evals(loss))
        if time.monotonic() - self._last_report >= self.every_s or step >= self.max_steps:
            self.report(step, loss)

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def report(self, step: int, loss: float | None) -> None:
        elapsed = time.monotonic() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.max_steps - step) / rate if rate > 0 else None
        atomic_write_json(
            self.run.path / "progress.json",
            {"step": step, "max_steps": self.max_steps, "elapsed_s": round(elapsed, 1), "eta_s": eta},
        )
        if self.bar is None:
            log.info(
                "%s: step %d/%d (%.0f%%), %.2f steps/s, ETA %s, %s",
                self.name,
                step,
                self.max_steps,
                100 * step / self.max_steps,
                rate,
                duration(eta),
                self._evals(loss),
            )
        self._last_report = time.monotonic()

    def _evals(self, loss: float | None) -> str:
        parts = [f"loss {loss:.4f}"] if loss is not None else []
        last = getattr(self.evaluations, "last", None)
        if last:
            step, metrics = last
            splits = " ".join(
                f"{k.split('/')[1]} {v:.3f}" for k, v in sorted(metrics.items()) if k.endswith("/success")
            )
            parts.append(f"{splits} (step {step})")
        return ", ".join(parts)
