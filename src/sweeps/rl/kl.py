"""Per-token KL estimates against a reference policy and per-token log-probabilities.

The paper's PPO has no KL penalty and no reference model; ``kl_penalty`` is here for the
configurations that add one. ``token_logprobs`` scores every generated token (the paper left
the first one out) at the sampling temperature (the paper divides logits by 0.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def k1(log_ratio: Tensor) -> Tensor:
    """log p - log ref: unbiased for KL(p || ref) under samples from p, but often negative."""
    return log_ratio


def k2(log_ratio: Tensor) -> Tensor:
    """0.5 (log p - log ref)^2: biased, low variance, non-negative."""
    return 0.5 * log_ratio.square()


def k3(log_ratio: Tensor) -> Tensor:
    """exp(ref - p) - (ref - p) - 1 in log space: unbiased and non-negative (Schulman 2020).

    Written as expm1(-d) + d so it stays accurate for tiny d; the clamp removes rounding
    residue of order 1e-16 below the true minimum 0.
    """
    return (torch.expm1(-log_ratio) + log_ratio).clamp(min=0.0)


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: Callable[[Tensor], Tensor] = k3) -> Tensor:
    """Per-token estimate of KL(pi || ref) from sampled tokens' log-probs, [N, T] -> [N, T].

    ``estimator`` maps the log-ratio to the estimate (``algo.kl_estimator`` in the config):
    k1 = logp - ref; k2 = 0.5 (logp - ref)^2; k3 = exp(ref - logp) - (ref - logp) - 1.
    No masking and no clamping of large log-ratios: the caller averages with ``masked_mean``
    (padding may hold anything) and keeps log-ratios far below float overflow (~88 in float32).
    """
    log_ratio = logp - ref_logp  # [N, T]
    return estimator(log_ratio)  # [N, T]


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature) gathered at ``tokens``: [N, T, V], [N, T] -> [N, T].

    ``logits[:, t]`` must already be the prediction for ``tokens[:, t]`` (shift before calling).
    Computed in at least float32 so bf16 logits do not lose the small log-probs.
    Memory: ``log_softmax`` materialises a second [N, T, V] tensor (4 bytes each: a batch of
    8 x 512 tokens over a 128k vocabulary is about 2 GiB); for long sequences call this in
    chunks over N, or use logits.gather - logsumexp, which avoids the full copy. Padding
    positions need a valid token id (any); mask the result afterwards.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature  # [N, T, V]
    logp = torch.log_softmax(logits, dim=-1)  # [N, T, V]
    return logp.gather(dim=-1, index=tokens.long().unsqueeze(-1)).squeeze(-1)  # [N, T]
