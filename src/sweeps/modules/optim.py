"""The optimizer and learning-rate schedule of every training stage (SFT, pretraining, RL).

``algo.optimizer`` is a partial optimizer class (``conf/algo/optimizer/<name>.yaml``, e.g.
``torch.optim.AdamW`` with its lr, betas, eps and weight decay), built here over the trainable
parameters; ``algo.scheduler`` names a ``transformers.get_scheduler`` schedule with
``algo.warmup_steps`` of warm-up over ``max_steps`` optimiser steps, stepped once per step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from hydra.utils import instantiate


def configure_optimizers(params: Iterable[torch.nn.Parameter], algo: Any, max_steps: int) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` value: the optimizer and its per-step schedule."""
    from transformers import get_scheduler

    opt = instantiate(algo.optimizer, _convert_="all")(list(params))
    sched = get_scheduler(algo.scheduler, opt, num_warmup_steps=algo.warmup_steps, num_training_steps=max_steps)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
