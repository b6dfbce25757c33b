"""RL building blocks as pure tensor functions (verl ``core_algos`` style).

An RL algorithm here is an advantage function (``advantages.py``) times a policy loss and an
aggregation (``losses.py``), plus optional KL and log-probability helpers (``kl.py``). Nothing
in this package holds state, owns a model, or generates text.
"""

from sweeps.rl.advantages import gae, group_advantages, group_mean_baseline, normalize
from sweeps.rl.kl import kl_penalty, token_logprobs
from sweeps.rl.losses import (
    clipped_surrogate,
    clipped_value_loss,
    entropy_from_logits,
    masked_mean,
    policy_gradient_loss,
)

__all__ = [
    "clipped_surrogate",
    "clipped_value_loss",
    "entropy_from_logits",
    "gae",
    "group_advantages",
    "group_mean_baseline",
    "kl_penalty",
    "masked_mean",
    "normalize",
    "policy_gradient_loss",
    "token_logprobs",
]
