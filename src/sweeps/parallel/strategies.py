"""Lightning strategies named by ``conf/trainer/strategy/*.yaml`` (the config is the registry).

Each YAML names a class or function with ``_target_``: Lightning's own ``DDPStrategy`` and
``DeepSpeedStrategy`` with their keyword arguments, :class:`sweeps.parallel.fsdp.FSDPStrategy`,
or :func:`named` for a name in Lightning's strategy registry (``auto``). The LightningModules
call :func:`configure` from Lightning's ``configure_model`` hook, which lets a strategy that
shards the model (FSDP) do so before the optimizer is built.
"""

from __future__ import annotations

from typing import Any


def named(name: str) -> str:
    """A strategy by its name in Lightning's registry, e.g. ``auto`` (one device, or DDP)."""
    return name


def build(cfg: Any) -> Any:
    """The Lightning strategy ``trainer.strategy`` describes."""
    from hydra.utils import instantiate

    return instantiate(cfg.trainer.strategy)


def configure(module: Any) -> None:
    """``configure_model`` of every LightningModule here: shard when the strategy shards."""
    parallelize = getattr(module.trainer.strategy, "parallelize", None)
    if parallelize is not None:
        parallelize(module)


def check_manual_optimization(strategy: Any) -> None:
    """RL accumulates micro-batches by hand between optimiser steps; DeepSpeed's engine owns
    accumulation and stepping, so the two do not combine. Refuse before any work."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if isinstance(strategy, DeepSpeedStrategy):
        raise ValueError(
            "trainer/strategy=deepspeed_stage_2 supports SFT only: RL accumulates micro-batches by hand, "
            "which DeepSpeed's engine does not allow; use trainer/strategy=fsdp or ddp"
        )
