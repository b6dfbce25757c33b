"""Turns (prompt + sampled response) packed into right-padded training tensors.

The frame is the model's prediction frame: ``logits[:, t]`` predicts ``input_ids[:, t + 1]``,
so every per-token tensor here has length L - 1 and ``response_mask[n, t]`` is true when
``input_ids[n, t + 1]`` is a sampled response token. Every generated token counts (the
paper's code skipped the first one), and the mask comes from the real lengths (not from a pad
id), so a pad id that is also a real token cannot corrupt it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sweeps.rl.kl import token_logprobs


@dataclass
class TurnBatch:
    input_ids: Tensor  # [N, L]
    attention_mask: Tensor  # [N, L]
    response_mask: Tensor  # [N, L-1] bool
    sampler_logp: Tensor  # [N, L-1], 0 outside the response
    last_prompt: Tensor  # [N] index of each turn's last prompt token
    extras: dict[str, Tensor] = field(default_factory=dict)  # [N] or [N, L-1] per-turn data

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> TurnBatch:
        """The batch on ``device`` (the model's): ``pack`` builds it on the CPU."""
        return TurnBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.response_mask.to(device),
            self.sampler_logp.to(device),
            self.last_prompt.to(device),
            {k: v.to(device) for k, v in self.extras.items()},
        )

    def select(self, idx: Tensor) -> TurnBatch:
        """Rows ``idx``, trimmed to their longest sequence (extras too)."""
        L = int(self.attention_mask[idx].sum(-1).max())
        extras = {k: (v[idx, : L - 1] if v.dim() == 2 else v[idx]) for k, v in self.extras.items()}
        return TurnBatch(
            self.input_ids[idx, :L],
            self.attention_mask[idx, :L],
            self.response_mask[idx, : L - 1],
            self.sampler_logp[idx, : L - 1],
            self.last_prompt[idx],
            extras,
        )


def pack(turns: Sequence[Any], pad_id: int) -> TurnBatch:
    """Right-pad turns (objects with prompt_ids, response_ids, sampler_logprobs)."""
    N = len(turns)
    L = max(len(t.prompt_ids) + len(t.response_ids) for t in turns)
    ids = torch.full((N, L), pad_id, dtype=torch.long)  # [N, L]
    attn = torch.zeros((N, L), dtype=torch.long)  # [N, L]
    resp = torch.zeros((N, L - 1), dtype=torch.bool)  # [N, L-1]
    slp = torch.zeros((N, L - 1))  # [N, L-1]
    last = torch.zeros(N, dtype=torch.long)  # [N]
    for n, t in enumerate(turns):
        p, r = len(t.prompt_ids), len(t.response_ids)
        ids[n, : p + r] = torch.tensor(list(t.prompt_ids) + list(t.response_ids))
        attn[n, : p + r] = 1
        resp[n, p - 1 : p - 1 + r] = True
        slp[n, p - 1 : p - 1 + r] = torch.tensor(t.sampler_logprobs[:r], dtype=torch.float32)
        last[n] = p - 1
    return TurnBatch(ids, attn, resp, slp, last)


def forward_logp(
    model: torch.nn.Module, batch: TurnBatch, temperature: float, want_hidden: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Log-probs of the batch's tokens under ``model`` at ``temperature``.

    Returns (logp [N, L-1], logits [N, L-1, V], hidden state at each last prompt token [N, d]
    or None). Logits are divided by the sampling temperature, as the sampler's were, so the
    importance ratio compares like with like.
    """
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=want_hidden)
    logits = out.logits[:, :-1]  # [N, L-1, V]
    logp = token_logprobs(logits, batch.input_ids[:, 1:], temperature)  # [N, L-1]
    hidden = None
    if want_hidden:
        h = out.hidden_states[-1]  # [N, L, d]
        hidden = h[torch.arange(h.shape[0]), batch.last_prompt]  # [N, d]
    return logp, logits, hidden
