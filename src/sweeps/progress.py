"""What a user watching a job or a study sees: a progress bar on a terminal, log lines elsewhere.

A job (rank 0) writes ``<run>/progress.json`` (step, max_steps, elapsed and ETA) every
``trainer.progress_every_s`` seconds, and shows a tqdm bar when its stderr is a terminal, or
logs one line per period when it is not (SLURM and submitit log files), e.g.

    sft/tiny/general_points_tiny/base/seed=0: step 120/300 (40%), 2.1 steps/s, ETA 1m26s, loss 0.8123, id 0.145 ood 0.120 (step 100)

The study driver watches the run directories of the stage it is running, by their
``DONE``/``FAILED`` markers and ``progress.json`` files, and shows the stage, jobs done, failed
and running, and an ETA from the jobs' mean progress:

    stage sft: 1/3 jobs done, 0 failed, 2 running, 61% of the steps, ETA 2m05s
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("sweeps.progress")


def duration(seconds: float | None) -> str:
    """1h02m, 3m05s, 42s; '?' when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def interactive(stream: Any = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(total: int, initial: int, desc: str, unit: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr, leave=True)


# --- a study stage -------------------------------------------------------------------------
@dataclass
class StageState:
    total: int
    done: int
    failed: int
    running: int
    fraction: float  # mean progress over the stage's jobs, 0..1
    elapsed: float

    @property
    def eta(self) -> float | None:
        """Elapsed x (1 - f) / f; unknown below 2 % of the steps (start-up dominates there)."""
        if self.fraction < 0.02 or self.fraction >= 1:
            return None if self.fraction < 1 else 0.0
        return self.elapsed * (1 - self.fraction) / self.fraction

    def line(self, stage: str) -> str:
        return (
            f"stage {stage}: {self.done}/{self.total} jobs done, {self.failed} failed, {self.running} running, "
            f"{self.fraction:.0%} of the steps, ETA {duration(self.eta)}"
        )


def stage_state(runs: Sequence[Path], started: float, now: float | None = None) -> StageState:
    """The state of a stage from its jobs' run directories (a job not started yet counts 0)."""
    done = failed = running = 0
    progress = 0.0
    for run in runs:
        if (run / "DONE").is_file():
            done += 1
            progress += 1.0
            continue
        if (run / "FAILED").is_file():
            failed += 1
            continue
        f = run / "progress.json"
        if f.is_file():
            try:
                p = json.loads(f.read_text())
                progress += min(1.0, p["step"] / max(p["max_steps"], 1))
                running += 1
            except (ValueError, KeyError):
                pass
    now = time.monotonic() if now is None else now
    return StageState(len(runs), done, failed, running, progress / max(len(runs), 1), now - started)


def watch(proc: Any, stage: str, runs: Sequence[Path], every_s: float = 60.0, poll_s: float = 2.0) -> int:
    """Wait for ``proc`` (a stage's multirun), showing the stage's progress; its exit code."""
    started = time.monotonic()
    state = stage_state(runs, started)
    shown = bar(state.total, state.done, f"stage {stage}", "job") if interactive() else None
    last_line = started
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            state = stage_state(runs, started)
            if shown is not None:
                shown.update(state.done - shown.n)
                shown.set_postfix_str(f"{state.failed} failed, {state.running} running, ETA {duration(state.eta)}")
            elif time.monotonic() - last_line >= every_s:
                log.info("%s", state.line(stage))
                last_line = time.monotonic()
        state = stage_state(runs, started)
        if shown is not None:
            shown.update(state.done - shown.n)
    finally:
        if shown is not None:
            shown.close()
    log.info("%s (%s)", state.line(stage).split(", ETA")[0], duration(state.elapsed))
    return proc.returncode
