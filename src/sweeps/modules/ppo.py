"""PPO with a critic, as in the paper (with its defects fixed).

The critic shares the language model's backbone: a head MLP d -> d/4 -> d/8 -> 1 with ReLU reads
the final hidden state at the last prompt token of each turn, V(s_t). Each turn of an episode is
one step of the MDP with the grader's reward; advantages come from ``algo.advantage``, GAE
(``sweeps.rl.advantages.gae``, gamma 0.9 and lambda 0.95 in ppo.yaml) over the time-ordered
turns, with the recursion cut at every episode end (the attempt budget is terminal: no
bootstrapping into the next, unrelated episode), and are normalised over the whole buffer
(every rank's turns together in a multi-process job). The loss is ``algo.policy_loss`` (the
clipped surrogate, clip 0.1) plus ``vf_coef`` x the clipped value loss, with the shared entropy
bonus and KL to the start policy (``RLModule.regularise``); ``epochs`` (4) passes over the
buffer in shuffled mini-batches.
"""

from __future__ import annotations

from typing import Any

import torch

from sweeps.modules.rl import RLModule
from sweeps.parallel import world
from sweeps.rl.advantages import normalize
from sweeps.rl.batch import TurnBatch, forward_logp
from sweeps.rl.losses import clipped_value_loss


class ValueHead(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d, d // 4),
            torch.nn.ReLU(),
            torch.nn.Linear(d // 4, d // 8),
            torch.nn.ReLU(),
            torch.nn.Linear(d // 8, 1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [N, d] -> [N, 1]
        return self.net(h.float())


class PPOModule(RLModule):
    wants_hidden = True

    def __init__(self, model: torch.nn.Module, *args: Any, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        self.value_head = ValueHead(model.config.hidden_size)

    def advantages(self, episodes: list[Any], batch: TurnBatch) -> dict[str, torch.Tensor]:
        dev = batch.input_ids.device
        rewards = torch.tensor([t.reward for e in episodes for t in e.turns], device=dev)  # [N]
        dones = torch.tensor([i == len(e.turns) - 1 for e in episodes for i in range(len(e.turns))], device=dev)  # [N]
        adv, returns = self.advantage(rewards, batch.extras["old_values"], dones)  # [N], [N]
        if self.algo.normalize_advantages:
            adv = normalize(adv, all_reduce=world.all_reduce)  # over every rank's turns
        return {"advantages": adv.float(), "returns": returns.float()}

    def turn_loss(self, sub: TurnBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logp, logits, hidden = forward_logp(self.model, sub, self.algo.temperature, want_hidden=True)
        pg, stats = self.policy_loss(logp, sub.extras["old_logp"], sub.extras["advantages"], sub.response_mask)
        values = self.value_head(hidden).squeeze(-1)  # [n]
        vloss = clipped_value_loss(values, sub.extras["old_values"], sub.extras["returns"], self.algo.value_clip)
        loss, reg = self.regularise(pg + self.algo.vf_coef * vloss, sub, logp, logits)
        out = {f"rl/{k}": v for k, v in stats.items()}
        return loss, {**out, **reg, "rl/value_loss": vloss.detach(), "rl/pg_loss": pg.detach()}
