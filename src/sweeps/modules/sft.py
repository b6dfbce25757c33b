"""Supervised fine-tuning as a LightningModule.

The loss is the mean next-token cross-entropy over completion tokens only: prompt tokens and
padding carry label -100, so the model is trained to produce the answer, not to model the
prompt. AdamW over the trainable parameters (all of them, or the LoRA adapters), with the
learning-rate schedule the config names (any ``transformers.get_scheduler`` schedule) stepped
once per optimiser step. The learning rate actually used for each step is exposed as
``last_lr`` and logged by the recorder callback every step, so a schedule silently overridden
elsewhere (as happened in the paper's run) shows in the logs.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from transformers import get_scheduler


class SFTModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, algo: Any, max_steps: int):
        super().__init__()
        self.model, self.algo, self.max_steps = model, algo, max_steps
        self.last_lr = float("nan")

    @property
    def stage_step(self) -> int:
        """Steps of this stage done (one optimiser step per SFT step)."""
        return self.global_step

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.last_lr = self.optimizers().param_groups[0]["lr"]
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"non-finite SFT loss {out.loss.item()} at step {self.global_step}")
        return out.loss

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.algo.lr, betas=tuple(self.algo.betas),
                                eps=self.algo.eps, weight_decay=self.algo.weight_decay)
        sched = get_scheduler(self.algo.scheduler, opt, num_warmup_steps=self.algo.warmup_steps,
                              num_training_steps=self.max_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
