"""Checkpoint roles: name an SFT checkpoint by what it is, resolved from the run's metrics.

``init.role=ood_peak`` starts RL from the SFT checkpoint with the best OOD success (the
paper's SFT_MaxOOD, earliest on ties); ``id_peak`` likewise for ID; ``sft_end`` is the last
checkpoint. A role is resolved per seed from that seed's SFT run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sweeps.runs import Run


def _argmax(records: list[dict], key: str) -> int:
    evals = [(r[key], -r["step"]) for r in records if key in r and r[key] == r[key]]
    if not evals:
        raise ValueError(f"no '{key}' values to pick a checkpoint from")
    return -max(evals)[1]


ROLES: dict[str, Callable[[list[dict], list[int]], int]] = {
    "ood_peak": lambda recs, steps: _argmax(recs, "eval/ood/success"),
    "id_peak": lambda recs, steps: _argmax(recs, "eval/id/success"),
    "sft_end": lambda recs, steps: max(steps),
}


def resolve(role: str, sft_run: Path) -> int:
    """The checkpoint step that ``role`` names in the SFT run at ``sft_run``."""
    if role not in ROLES:
        raise ValueError(f"init.role={role!r} is not a known role: use one of {sorted(ROLES)}")
    run = Run(sft_run)
    steps = [s for s, _ in run.checkpoints()]
    if not run.done or not steps:
        raise FileNotFoundError(f"init.role={role} needs the finished SFT run {sft_run} (DONE and checkpoints)")
    step = ROLES[role](run.read_metrics(), steps)
    if step not in steps:
        raise ValueError(f"init.role={role} picked step {step}, which has no checkpoint in {sft_run}/ckpt")
    return step
