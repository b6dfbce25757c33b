"""RL building blocks as pure tensor functions (verl ``core_algos`` style).

An RL algorithm here is an advantage function (``advantages.py``) times a policy loss and an
aggregation (``losses.py``), plus optional KL and log-probability helpers (``kl.py``). The
config names them (``algo.advantage``, ``algo.policy_loss`` with its ``agg``,
``algo.kl_estimator``: ``_target_`` with ``_partial_: true``), so a new variant is a function
here and a YAML in ``conf/algo/``. Nothing in this package holds state, owns a model, or
generates text.
"""

from sweeps.rl.advantages import gae, group_advantages, group_mean_baseline, normalize, per_group
from sweeps.rl.kl import k1, k2, k3, kl_penalty, token_logprobs
from sweeps.rl.losses import (
    clipped_surrogate,
    clipped_value_loss,
    entropy_from_logits,
    masked_mean,
    policy_gradient_loss,
    seq_mean,
    token_mean,
    vanilla_policy_gradient,
)

__all__ = [
    "clipped_surrogate",
    "clipped_value_loss",
    "entropy_from_logits",
    "gae",
    "group_advantages",
    "group_mean_baseline",
    "k1",
    "k2",
    "k3",
    "kl_penalty",
    "masked_mean",
    "normalize",
    "per_group",
    "policy_gradient_loss",
    "seq_mean",
    "token_mean",
    "token_logprobs",
    "vanilla_policy_gradient",
]
