"""SIGTERM stops a job at the next step boundary with its trainer state saved.

SLURM sends SIGTERM before SIGKILL (preemption, ``scancel``, the end of the time limit after
the USR2 warning), and so do Kubernetes and most schedulers. Lightning's own SIGTERM handler
only notes the signal (and, with several processes, broadcasts from inside the handler), so a
job could run on for minutes and then be killed with the work since its last checkpoint lost.

:class:`StopOnSigterm` replaces it while the job trains: the handler only sets a flag. At the
end of every optimiser step the flag is reduced over the ranks (a max over one float, so every
rank stops at the same step); when set, the trainer state of that step is saved as a resume
state (the same atomic ``resume/`` layout a checkpoint step writes; skipped if this step's was
just written) and :class:`Preempted` is raised on every rank. The job exits with status 143
(128 + SIGTERM), its MLflow run ends KILLED, and re-running the same command (or SLURM's requeue)
resumes from that step. The signal is acted on after the step in progress; during a checkpoint's
evaluation a one-process job stops between generation batches (the checkpoint is redone on
resume), a multi-process one after the evaluation.
Lightning restores the previous handlers (submitit's, for example) when ``fit`` returns.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import lightning as L

from sweeps.cli import Preempted
from sweeps.parallel import world

__all__ = ["Preempted", "StopOnSigterm"]

log = logging.getLogger(__name__)
_requested = threading.Event()  # set by the handler; read at step ends and between evaluation batches


def requested() -> bool:
    """Whether this process got SIGTERM while a job trained."""
    return _requested.is_set()


def check_during_evaluation(step: int, run_path: Any = None) -> None:
    """Between evaluation batches of a one-process job: stop now rather than after the whole
    evaluation. The checkpoint being scored is redone on resume (from the previous trainer
    state); with several ranks the stop waits for the step end, where the ranks agree on it."""
    if _requested.is_set() and world.world().size == 1:
        raise Preempted(
            f"SIGTERM: stopped while evaluating step {step}; re-run the same command (or requeue) "
            "to resume from the last saved trainer state"
        )


class StopOnSigterm(L.Callback):
    """See the module doc. Place it after the callbacks that save checkpoints."""

    def __init__(self, run: Any, checkpoints: Any, max_steps: int):
        self.run, self.checkpoints = run, checkpoints  # checkpoints: the CheckpointEvaluate callback
        self.max_steps = max_steps  # the last step finishes the job as usual
        _requested.clear()
        self._last_step: int | None = None

    def _install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if not _requested.is_set():
            log.warning("rank %d: SIGTERM: saving the trainer state after this step, then exiting", world.world().rank)
        _requested.set()

    def setup(self, trainer: L.Trainer, module: Any, stage: str) -> None:
        self._install()  # covers model set-up and restore; Lightning composes its own with it

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        self._install()  # Lightning registered its handlers since: ours alone from here on
        self._last_step = module.stage_step

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = module.stage_step
        if step == self._last_step:  # mid-step (gradient accumulation, RL minibatches)
            return
        self._last_step = step
        if step >= self.max_steps or float(world.all_reduce([1.0 if _requested.is_set() else 0.0], op="max")[0]) == 0.0:
            return
        from sweeps.modules.callbacks import save_resume_state

        if getattr(self.checkpoints, "_saved", None) != step:
            save_resume_state(trainer, self.run, step)
        raise Preempted(
            f"SIGTERM: stopped at step {step} with its trainer state saved in "
            f"{self.run.resume_dir}; re-run the same command (or requeue) to resume"
        )
