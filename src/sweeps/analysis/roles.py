"""Checkpoint roles: name an SFT checkpoint by what it is, resolved from the run's metrics.

``init.role=ood_peak`` starts RL from the SFT checkpoint with the best OOD success (the
paper's SFT_MaxOOD, earliest on ties); ``id_peak`` likewise for ID; ``sft_end`` is the last
checkpoint; ``rotation_select`` is chosen from the online rotation monitor alone (no ID or OOD
data; :func:`select_by_rotation`). A role is resolved per seed from that seed's SFT run directory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from sweeps.runs import Run

ROTATION = "rotation/angle_mean"  # the online monitor's mean principal angle to the start
SELECT_FRACTION = 0.5  # fixed before any ablation ran; not tuned on OOD results


def select_by_rotation(angle: dict[int, float], steps: list[int], fraction: float = SELECT_FRACTION) -> int:
    """The checkpoint a rotation-only rule picks: the last of ``steps`` whose rotation is at most
    ``fraction`` of the rotation at the last checkpoint ("before half of the run's rotation").

    ``angle`` maps monitor steps to ``rotation/angle_mean`` (principal angles to the start, so
    0 at step 0); a checkpoint's rotation is the monitor's latest value at or before its step
    (what the monitor had shown when the checkpoint was written). No evaluation data is read.
    """
    pts = {int(s): float(v) for s, v in angle.items() if v is not None and math.isfinite(float(v))}
    if not pts:
        raise ValueError(f"no '{ROTATION}' values to pick a checkpoint from: run SFT with trainer.rotation_monitor=N")
    pts.setdefault(0, 0.0)

    def at(step: int) -> float | None:
        before = [s for s in pts if s <= step]
        return pts[max(before)] if before else None

    steps = sorted(steps)
    end = at(steps[-1])
    ok = [s for s in steps if at(s) is not None and end is not None and at(s) <= fraction * end]
    return max(ok) if ok else steps[0]


def _argmax(records: list[dict], key: str) -> int:
    evals = [(r[key], -r["step"]) for r in records if key in r and r[key] == r[key]]
    if not evals:
        raise ValueError(f"no '{key}' values to pick a checkpoint from")
    return -max(evals)[1]


ROLES: dict[str, Callable[[list[dict], list[int]], int]] = {
    "ood_peak": lambda recs, steps: _argmax(recs, "eval/ood/success"),
    "id_peak": lambda recs, steps: _argmax(recs, "eval/id/success"),
    "sft_end": lambda recs, steps: max(steps),
    "rotation_select": lambda recs, steps: select_by_rotation(
        {r["step"]: r[ROTATION] for r in recs if ROTATION in r}, steps
    ),
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
