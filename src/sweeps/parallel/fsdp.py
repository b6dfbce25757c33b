"""Fully sharded data parallelism (FSDP2, torch's ``fully_shard``) through Lightning.

``trainer/strategy=fsdp`` builds :class:`FSDPStrategy`, a Lightning ``ModelParallelStrategy``
with one data-parallel axis over every process (no tensor parallelism). In Lightning's
``configure_model`` hook the modules call :meth:`FSDPStrategy.parallelize`, which shards:

- each transformer block (the classes named in ``blocks``, by default the model's own
  ``_no_split_modules``, e.g. ``Qwen2DecoderLayer``) as one FSDP unit, all-gathered just before
  its forward and backward and freed after;
- then the whole model (embeddings, final norm, LM head: the root unit, kept unsharded between
  its forward and backward);
- then every other trainable child of the LightningModule (PPO's value head), so its gradients
  are reduced like the others'.

Each process keeps 1/world of every parameter, gradient and AdamW state. Mixed precision is
FSDP2's ``MixedPrecisionPolicy``: with ``trainer.precision=bf16-mixed`` the units are
all-gathered and computed in bfloat16 and gradients reduced in float32 over float32 master
weights. The resume state is a ``torch.distributed.checkpoint`` directory (each rank writes its
own shards); the Hugging Face checkpoints are gathered whole on rank 0
(:func:`sweeps.models.checkpoint.save_checkpoint`).

Lightning's own ``strategy="fsdp"`` (FSDP1) is not used: it refuses CPUs ("The strategy `fsdp`
requires a GPU accelerator"), so it could not be tested here, and it wraps the LightningModule
in one root unit, under which the RL loop's several forward/backward passes per step would run
inside a single root forward.

Generation under FSDP: :func:`gathered` all-gathers every unit once and keeps it whole for the
duration, so ranks can sample different numbers of tokens without waiting for each other (each
rank holds the whole model meanwhile, as TRL's ZeRO-3 generation does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


def mixed_precision(precision: str, reduce_dtype: str | None = "float32") -> Any:
    """FSDP2's policy for a Lightning precision flag: bf16-mixed -> bfloat16 compute, float32
    gradient reduction; a ``*-true`` or 32-bit flag -> no casts (the weights' own dtype)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    head = str(precision).split("-")[0]
    if not str(precision).endswith("-mixed") or head not in DTYPES:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(
        param_dtype=DTYPES[head], reduce_dtype=getattr(torch, reduce_dtype) if reduce_dtype else None
    )


class FSDPStrategy(ModelParallelStrategy):
    """FSDP2 over all processes (see the module docstring)."""

    def __init__(
        self,
        precision: str = "32-true",
        blocks: list[str] | None = None,
        reshard_after_forward: bool = True,
        reduce_dtype: str | None = "float32",
        cpu_offload: bool = False,
        distributed_checkpoint: bool = True,
        timeout_min: float = 30,
    ):
        import datetime

        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=distributed_checkpoint,
            timeout=datetime.timedelta(minutes=timeout_min),
        )
        self.blocks = list(blocks) if blocks else None
        self.reshard_after_forward, self.cpu_offload = bool(reshard_after_forward), bool(cpu_offload)
        self.mp_policy = mixed_precision(precision, reduce_dtype)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # every process, one axis
        super().setup_environment()

    def parallelize(self, module: Any) -> None:
        """Shard ``module.model`` block by block, then its root, then other trainable children."""
        from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, OffloadPolicy, fully_shard

        model = module.model
        if isinstance(model, FSDPModule):  # configure_model may run twice
            return
        names = set(self.blocks or block_classes(model))
        blocks = [m for m in model.modules() if type(m).__name__ in names]
        if not blocks:
            raise ValueError(
                f"trainer.strategy.blocks={sorted(names)} matches no module of {type(model).__name__}: "
                "name its transformer block class (e.g. [LlamaDecoderLayer])"
            )
        broadcast_from_rank0(module)
        kw = dict(
            mesh=self.device_mesh["data_parallel"],
            mp_policy=self.mp_policy,
            offload_policy=CPUOffloadPolicy() if self.cpu_offload else OffloadPolicy(),
        )
        for block in blocks:
            _shard(fully_shard, block, self.reshard_after_forward, **kw)
        _shard(fully_shard, model, False, **kw)  # the root: needed first in backward
        for child in module.children():
            if child is not model and any(p.requires_grad for p in child.parameters()):
                _shard(fully_shard, child, False, **kw)


def broadcast_from_rank0(module: torch.nn.Module) -> None:
    """Every parameter and buffer as rank 0 has it, before sharding (DDP does the same when it
    wraps a model). Each rank shards its own copy, so weights initialised at random on each
    rank (PPO's value head, LoRA's A factors) would otherwise differ shard by shard."""
    import torch.distributed as dist

    from sweeps.parallel.world import _device

    device = _device()
    for t in [*module.parameters(), *module.buffers()]:
        buf = t.data.to(device)
        dist.broadcast(buf, src=0)
        if buf is not t.data:
            t.data.copy_(buf)


def _shard(fully_shard: Any, module: torch.nn.Module, reshard: bool, **kw: Any) -> None:
    fully_shard(module, reshard_after_forward=reshard, **kw)
    module._sweeps_reshard_after_forward = reshard  # what gathered() restores


def block_classes(model: torch.nn.Module) -> list[str]:
    """The transformer block classes a Hugging Face model names (``_no_split_modules``)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return list(getattr(base, "_no_split_modules", None) or [])


def fsdp_modules(model: torch.nn.Module) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Every FSDP unit of ``model`` unsharded for the duration, with no collective in forward.

    One all-gather per unit on entry (every rank enters together), one free on exit. Inside,
    forward passes communicate nothing, so ranks may run different numbers of them (sampling
    until every sequence ends). A model without FSDP units is yielded as it is.
    """
    units = fsdp_modules(model)
    if not units:
        yield model
        return
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(getattr(unit, "_sweeps_reshard_after_forward", True), recurse=False)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) weight all-gathered whole (a collective: every rank calls it in the
    same order); a plain tensor as it is."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def storage_key(t: torch.Tensor) -> int:
    """Identifies the storage behind ``t`` (tied weights share one), sharded or not."""
    local = t.to_local() if hasattr(t, "to_local") else t
    return local.data_ptr()


def total_grad_norm(params: list[torch.nn.Parameter]) -> float:
    """The L2 norm of all gradients of ``params`` together, sharded or not (a collective under
    FSDP: every rank calls it)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(full_tensor(torch.nn.utils.get_total_norm(grads, norm_type=2.0)))
