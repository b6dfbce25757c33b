"""GRPO and REINFORCE: critic-free policy gradients with group baselines.

For each prompt, ``group_size`` episodes are sampled; an episode's return (the sum of its
turns' rewards; the reward itself for single-attempt episodes) is turned into an advantage
within its group, and every turn of the episode takes that advantage:

- ``advantage: group_norm`` (GRPO): (R - mean_group) / (std_group + eps); groups whose samples
  all got the same reward give zero advantage (and zero gradient).
- ``advantage: group_mean`` (REINFORCE with a baseline): R - mean_group.

The policy loss is the clipped surrogate (``policy_loss: clipped``; with one epoch and one
mini-batch it equals the on-policy policy gradient) or the plain -A log pi
(``policy_loss: vanilla``), plus an optional k3 KL penalty to the frozen starting policy and an
optional entropy bonus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sweeps.modules.rl import RLModule
from sweeps.rl.advantages import group_advantages, group_mean_baseline
from sweeps.rl.batch import TurnBatch, forward_logp
from sweeps.rl.losses import clipped_surrogate, entropy_from_logits, policy_gradient_loss

ADVANTAGES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "group_norm": group_advantages,  # [P, G] -> [P, G]
    "group_mean": group_mean_baseline,
}


def _vanilla(logp, old_logp, adv, mask, clip, agg):
    return policy_gradient_loss(logp, adv, mask, agg), {}


POLICY_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]] = {
    "clipped": clipped_surrogate,
    "vanilla": _vanilla,
}


class PolicyGradientModule(RLModule):
    def advantages(self, episodes: list[Any], batch: TurnBatch) -> dict[str, torch.Tensor]:
        G = self.algo.group_size
        returns = torch.tensor([e.ret for e in episodes], dtype=torch.float32).view(-1, G)  # [P, G]
        per_episode = ADVANTAGES[self.algo.advantage](returns).reshape(-1)  # [P*G]
        per_turn = torch.cat([per_episode[i].repeat(len(e.turns)) for i, e in enumerate(episodes)])  # [N]
        return {"advantages": per_turn}

    def turn_loss(self, sub: TurnBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logp, logits, _ = forward_logp(self.model, sub, self.algo.temperature)  # [n, T]
        mask = sub.response_mask
        if sub.extras["old_logp"] is None:  # see reuses_logp
            sub.extras["old_logp"] = logp.detach()
        loss, stats = POLICY_LOSSES[self.algo.policy_loss](
            logp, sub.extras["old_logp"], sub.extras["advantages"], mask, self.algo.clip, self.algo.agg
        )
        out = {f"rl/{k}": v for k, v in stats.items()}
        kl, kl_stats = self.kl_term(sub, logp)
        loss = loss + kl
        if self.algo.entropy_coef > 0:
            entropy = entropy_from_logits(logits, mask)
            loss = loss - self.algo.entropy_coef * entropy
            out["rl/entropy"] = entropy.detach()
        return loss, {**out, **kl_stats}
