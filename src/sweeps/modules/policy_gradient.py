"""GRPO and REINFORCE: critic-free policy gradients with group baselines.

For each prompt, ``group_size`` episodes are sampled; an episode's return (the sum of its
turns' rewards; the reward itself for single-attempt episodes) is turned into an advantage
within its group by ``algo.advantage`` (a function of the returns [P, G]), and every turn of
the episode takes that advantage:

- GRPO (``sweeps.rl.advantages.group_advantages``): (R - mean_group) / (std_group + eps);
  groups whose samples all got the same reward give zero advantage (and zero gradient).
- REINFORCE with a baseline (``sweeps.rl.advantages.group_mean_baseline``): R - mean_group.

The policy loss is ``algo.policy_loss``: the clipped surrogate (GRPO; with one epoch and one
mini-batch it equals the on-policy policy gradient) or the plain -A log pi (REINFORCE), each with
its aggregation, plus the shared KL penalty and entropy bonus (``RLModule.regularise``).
"""

from __future__ import annotations

from typing import Any

import torch

from sweeps.modules.rl import RLModule
from sweeps.rl.batch import TurnBatch, forward_logp


class PolicyGradientModule(RLModule):
    def advantages(self, episodes: list[Any], batch: TurnBatch) -> dict[str, torch.Tensor]:
        G = self.algo.group_size
        returns = torch.tensor([e.ret for e in episodes], dtype=torch.float32).view(-1, G)  # [P, G]
        per_episode = self.advantage(returns).reshape(-1)  # [P*G]
        per_turn = torch.cat([per_episode[i].repeat(len(e.turns)) for i, e in enumerate(episodes)])  # [N]
        return {"advantages": per_turn}

    def turn_loss(self, sub: TurnBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logp, logits, _ = forward_logp(self.model, sub, self.algo.temperature)  # [n, T]
        if sub.extras["old_logp"] is None:  # see reuses_logp
            sub.extras["old_logp"] = logp.detach()
        loss, stats = self.policy_loss(logp, sub.extras["old_logp"], sub.extras["advantages"], sub.response_mask)
        loss, reg = self.regularise(loss, sub, logp, logits)
        return loss, {**{f"rl/{k}": v for k, v in stats.items()}, **reg}
