"""The ranks of a multi-process job and the few collectives the stages need.

A job with ``trainer.devices x trainer.num_nodes > 1`` runs one process per device (see
:mod:`sweeps.parallel.launch`). Every process runs the same job code; rank 0 alone writes the
run's files, metrics and MLflow run, and the others take part in the collectives.

Two process groups: the default one (NCCL on GPUs, gloo on CPUs), which Lightning's strategy
also uses for gradients, carries the tensor collectives of the training loop (token counts,
metric sums) with tensors on the training device; a second, gloo-only group carries Python
objects (the run directory's claim, evaluation episodes), so they never touch a GPU. Without a
process group (one process) every function here is the single-process identity, so callers
never branch on the world size.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
_CONTROL: Any = None  # the gloo group for Python objects (None: the default group is gloo)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that writes files (global rank 0)."""
        return self.rank == 0


def _dist() -> Any:
    """``torch.distributed``, imported when first needed (see :func:`initialized`)."""
    import torch.distributed

    return torch.distributed


def initialized() -> bool:
    """True inside a process group. Never imports torch itself: a job that only skips (DONE)
    must stay a sub-second affair."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def world() -> World:
    """This process's place in the job: (rank, size, local rank); (0, 1, 0) without a group."""
    if not initialized():
        return World()
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    return World(_dist().get_rank(), _dist().get_world_size(), local)


def init(rank: int, size: int, address: str, port: int, backend: str, timeout_s: float = 1800) -> None:
    """Join the job's process group (before Lightning, which then uses it as it is)."""
    global _CONTROL
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = address, str(port)
    timeout = datetime.timedelta(seconds=timeout_s)
    _dist().init_process_group(backend, rank=rank, world_size=size, timeout=timeout)
    _CONTROL = _dist().new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None


def shutdown() -> None:
    global _CONTROL
    if initialized():
        _dist().destroy_process_group()
    _CONTROL = None


def _device() -> Any:
    """Where tensors of the default group must live (the current GPU under NCCL)."""
    import torch

    if initialized() and _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --- Python objects (gloo group) ----------------------------------------------------------
def broadcast(obj: T, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank."""
    if not initialized():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src, group=_CONTROL)
    return box[0]


def gather(obj: T) -> list[T] | None:
    """Every rank's ``obj``, in rank order, on rank 0; None on the other ranks."""
    if not initialized():
        return [obj]
    out: list[Any] | None = [None] * _dist().get_world_size() if _dist().get_rank() == 0 else None
    _dist().gather_object(obj, out, dst=0, group=_CONTROL)
    return out


def barrier() -> None:
    if initialized():
        _dist().barrier(group=_CONTROL)


def on_main(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` run on rank 0 only, its result (or its exception) handed to every rank.

    The other ranks wait for it; when it raises, every rank raises the same exception, so no
    rank is left waiting in a collective for a rank that has stopped.
    """
    if not initialized():
        return fn(*args)
    result: tuple[bool, Any] = (True, None)
    if world().main:
        try:
            result = (True, fn(*args))
        except Exception as err:  # noqa: BLE001 - re-raised on every rank below
            result = (False, err)
    ok, value = broadcast(result)
    if not ok:
        raise value
    return value


# --- tensors (default group) --------------------------------------------------------------
def all_reduce(values: Sequence[float] | Any, op: str = "sum") -> Any:
    """Element-wise sum (or max, min) over ranks of a float64 vector, returned on the CPU."""
    import torch

    t = torch.as_tensor(values, dtype=torch.float64).detach().clone()
    if not initialized():
        return t
    ops = {"sum": _dist().ReduceOp.SUM, "max": _dist().ReduceOp.MAX, "min": _dist().ReduceOp.MIN}
    t = t.to(_device())
    _dist().all_reduce(t, op=ops[op])
    return t.cpu()


def all_reduce_(t: Any) -> Any:
    """In-place sum over ranks of a tensor already on the training device (keeps the graph out)."""
    if initialized():
        _dist().all_reduce(t, op=_dist().ReduceOp.SUM)
    return t


def even_splits(n: int, size: int) -> list[slice | None]:
    """``range(n)`` in chunks of ``size``, padded with ``None`` to the largest count on any rank.

    Forward passes of a sharded model are collectives: every rank must run as many as the
    others. A rank with fewer chunks gets ``None`` entries, for which the caller runs a dummy
    pass that contributes nothing (a zero-weighted loss).
    """
    chunks: list[slice | None] = [slice(i, min(i + size, n)) for i in range(0, n, size)]
    most = int(all_reduce([len(chunks)], "max")[0])
    return chunks + [None] * (most - len(chunks))
