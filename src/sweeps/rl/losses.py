"""Policy and value losses as pure functions: per-token loss x aggregation (verl style).

Every function takes the real attention/response mask (bool or 0/1, [N, T]) and reads padded
positions through ``torch.where``, never through multiplication, so garbage, inf or NaN in
padding cannot reach a loss or a gradient. Fixes to the paper's PPO (PAPER.md section 4):
no "if any ratio > 10 use only the clipped term" hack (the standard pessimistic min already
bounds the update), masks come from the tokenizer rather than pad id 0, and the value clip is
a parameter whose default suits returns of about +-5.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is true, over ``dim`` or over everything.

    ``mask`` broadcasts to ``x``. Masked-out entries are replaced by 0 before summing (so inf
    or NaN there is harmless), and an empty selection gives 0 rather than NaN.
    """
    mask = mask.bool().expand_as(x)
    total = torch.where(mask, x, torch.zeros_like(x)).sum(dim=dim)
    count = mask.sum(dim=dim).clamp(min=1)
    return total / count


Aggregation = Callable[[Tensor, Tensor], Tensor]  # per-token loss [N, T], mask [N, T] -> []


def token_mean(per_token: Tensor, mask: Tensor) -> Tensor:
    """Every real token weighs the same (long answers weigh more): the masked mean over all tokens."""
    return masked_mean(per_token, mask)


def seq_mean(per_token: Tensor, mask: Tensor) -> Tensor:
    """Every sequence weighs the same (seq-mean-token-mean in verl): the mean over sequences of
    each sequence's token mean; sequences with no tokens are skipped."""
    per_seq = masked_mean(per_token, mask, dim=-1)  # [N]
    return masked_mean(per_seq, mask.bool().any(dim=-1))  # []


def _per_token(advantages: Tensor, mask: Tensor) -> Tensor:
    """Advantages [N] (one per sequence) or [N, T] as [N, T], zero on padding."""
    if advantages.dim() == mask.dim() - 1:
        advantages = advantages.unsqueeze(-1)  # [N, 1]
    advantages = advantages.detach().expand(mask.shape)  # [N, T]
    return torch.where(mask.bool(), advantages, torch.zeros_like(advantages))  # [N, T]


def clipped_surrogate(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip: float = 0.1,
    agg: Aggregation = token_mean,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate, max(-A r, -A clip(r, 1 - clip, 1 + clip)) per token, aggregated.

    r = exp(logp - old_logp) per token; ``advantages`` is [N] (one per turn, broadcast over its
    tokens) or [N, T]. The clip only stops the objective from improving past 1 +- clip; a ratio
    moving the wrong way is never clipped, however large (no ratio > 10 hack). Simplified
    against the paper: the ratio is per token, not one per turn with pre-"formula" tokens
    weighted 0.5. Stats (detached, 0-d): ``clip_frac`` (share of tokens where the clipped
    term is active), ``approx_kl`` (mean of (r - 1) - log r, the k3 estimate of
    KL(old || new)) and ``ratio_mean``.
    """
    real = mask.bool()  # [N, T]
    adv = _per_token(advantages, real)  # [N, T]
    log_ratio = torch.where(real, logp - old_logp.detach(), torch.zeros_like(logp))  # [N, T]
    ratio = torch.exp(log_ratio)  # [N, T]
    unclipped = -adv * ratio  # [N, T]
    clipped = -adv * ratio.clamp(1.0 - clip, 1.0 + clip)  # [N, T]
    loss = agg(torch.maximum(unclipped, clipped), real)
    with torch.no_grad():
        stats = {
            "clip_frac": masked_mean((clipped > unclipped).to(ratio.dtype), real),
            "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, real),
            "ratio_mean": masked_mean(ratio, real),
        }
    return loss, stats


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip: float = 0.2) -> Tensor:
    """PPO's clipped value loss 0.5 * mean(max((V - R)^2, (V_clip - R)^2)) over N turns.

    V_clip = V_old + clamp(V - V_old, -clip, clip): the critic may not move its prediction more
    than ``clip`` per update without paying for it. The paper used 0.1, the same as the ratio
    clip, but its returns span about +-5, so 0.1 freezes the critic near its old values; the
    default here is 0.2 and it should be set on the scale of the returns (or very large to
    switch clipping off). The 0.5 weight on the total loss is the caller's business.
    """
    old_values, returns = old_values.detach(), returns.detach()  # [N]
    values_clipped = old_values + (values - old_values).clamp(-clip, clip)  # [N]
    losses = torch.maximum((values - returns).square(), (values_clipped - returns).square())  # [N]
    return 0.5 * losses.mean()


def policy_gradient_loss(logp: Tensor, advantages: Tensor, mask: Tensor, agg: Aggregation = token_mean) -> Tensor:
    """Plain REINFORCE: -A * log pi(token) per real token, aggregated.

    ``advantages`` is [N] or [N, T] and treated as a constant. On-policy only: there is no
    importance ratio, so reusing a batch for several updates is biased (use the surrogate).
    """
    real = mask.bool()  # [N, T]
    logp = torch.where(real, logp, torch.zeros_like(logp))  # [N, T]
    per_token = -_per_token(advantages, real) * logp  # [N, T]
    return agg(per_token, real)


def vanilla_policy_gradient(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, agg: Aggregation = token_mean
) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`policy_gradient_loss` with the policy-loss signature the RL modules call
    (``old_logp`` is not used: no importance ratio) and no stats."""
    return policy_gradient_loss(logp, advantages, mask, agg), {}


def entropy_from_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """Masked mean over tokens of the entropy -sum_v p_v log p_v of the next-token distribution.

    ``logits`` is [N, T, V] and computed in at least float32. The softmax materialises an
    [N, T, V] tensor (see ``kl.token_logprobs`` for the memory cost). Padding logits must be
    finite for gradients to stay finite; their values never reach the result.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # [N, T, V]
    logp = torch.log_softmax(logits, dim=-1)  # [N, T, V]
    entropy = -(logp.exp() * logp).sum(dim=-1)  # [N, T]
    return masked_mean(entropy, mask)
