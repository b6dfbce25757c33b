"""Supervised fine-tuning as a LightningModule.

The loss is the mean next-token cross-entropy over completion tokens only: prompt tokens and
padding carry label -100, so the model is trained to produce the answer, not to model the
prompt. The optimizer ``algo.optimizer`` names (AdamW) over the trainable parameters (all of
them, or the LoRA adapters), with the learning-rate schedule the config names (any
``transformers.get_scheduler`` schedule) stepped once per optimiser step
(:mod:`sweeps.modules.optim`). The learning rate actually used for each step is exposed as
``last_lr`` and logged by the recorder callback every step, so a schedule silently overridden
elsewhere (as happened in the paper's run) shows in the logs.

Several processes: each rank holds ``batch_size / world`` examples of the global batch, and the
loss is normalised by the completion tokens of the whole global batch (counted across ranks),
so that averaging the ranks' gradients gives exactly the gradient of the one-process token
mean (the same fix as Hugging Face's ``num_items_in_batch``); ``train/loss`` is that global
mean. A plain per-rank mean would weight a rank's tokens by its share of the batch.

Rotation-preserving SFT (``algo.rotation_reg.lam > 0``, :mod:`sweeps.modules.rotation_reg`): the
penalty λ R(W) of the target matrices is added to the loss; ``train/loss`` stays the
cross-entropy and R is logged as ``train/rotation_reg``. With λ = 0 nothing is added.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from sweeps.modules import optim, rotation_reg
from sweeps.parallel import strategies, world


class SFTModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, algo: Any, max_steps: int, targets: list[str] | None = None):
        super().__init__()
        self.model, self.algo, self.max_steps = model, algo, max_steps
        self.last_lr, self.step_metrics = float("nan"), {}
        # references from the weights as built (the base), before a resume state is loaded
        self.reg = rotation_reg.build(model, algo, targets or [])

    @property
    def stage_step(self) -> int:
        """Steps of this stage done (one optimiser step per SFT step)."""
        return self.global_step

    def configure_model(self) -> None:
        strategies.configure(self)  # FSDP shards the model here, before the optimizer
        if self.reg is not None:
            rotation_reg.check_whole(self.model)  # the ranks' configs skip the schema's check: refuse here too

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.last_lr = self.optimizers().param_groups[0]["lr"]
        size = world.world().size
        tokens = world.all_reduce_((batch["labels"][:, 1:] != -100).sum().float())  # [] global completion tokens
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            num_items_in_batch=tokens.clamp(min=1) / size,
            use_cache=False,
        )
        mean = world.all_reduce_(out.loss.detach().clone()) / size  # [] the global token mean
        if not torch.isfinite(mean):
            raise FloatingPointError(f"non-finite SFT loss {mean.item()} at step {self.global_step}")
        self.step_metrics = {"train/loss": float(mean)}
        if self.reg is None:
            return out.loss
        r = self.reg.penalty(self.model, self.global_step)  # [] R(W), same on every rank
        self.step_metrics["train/rotation_reg"] = float(r.detach())
        return out.loss + self.algo.rotation_reg.lam * r

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.reg is not None:
            checkpoint["rotation_reg"] = self.reg.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.reg is not None:
            self.reg.load_state_dict(checkpoint.get("rotation_reg") or {})

    def configure_optimizers(self) -> Any:
        return optim.configure_optimizers(
            (p for p in self.model.parameters() if p.requires_grad), self.algo, self.max_steps
        )
