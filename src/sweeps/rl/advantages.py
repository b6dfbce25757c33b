"""Advantage estimators: GAE for PPO with a critic, group baselines for GRPO and REINFORCE.

All functions are pure and return targets, not graph nodes: GAE runs under ``no_grad``.
Two fixes to the paper's PPO (PAPER.md section 4) live here:

* GAE cuts the recursion at every episode end. The paper kept mask = 1 on truncated steps, so
  the last turn of an episode bootstrapped from the first state of the next, unrelated episode
  in the flat buffer. The attempt budget is part of the task, so running out of it is terminal.
* ``normalize`` is the paper's buffer-wide (A - mean) / (std + 1e-5), made mask-aware so that
  padding never enters the statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sweeps.rl.losses import masked_mean


def _float_dtype(*tensors: Tensor) -> torch.dtype:
    """The common dtype of ``tensors``, at least float32 (float64 stays float64)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def per_group(estimator: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Mark an estimator over group returns [P, G] (``PolicyGradientModule`` calls it with the
    returns of each prompt's ``group_size`` episodes): the schema then refuses
    ``algo.group_size < 2``, where every advantage would be 0."""
    estimator.per_group = True  # type: ignore[attr-defined]
    return estimator


@torch.no_grad()
def gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    gamma: float = 0.9,
    lam: float = 0.95,
    last_value: float | Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over a flat, time-ordered buffer of T turns.

    delta_t = r_t + gamma * V_{t+1} * (1 - d_t) - V_t and
    A_t = delta_t + gamma * lam * (1 - d_t) * A_{t+1}; returns R_t = A_t + V_t.
    ``dones[t] = 1`` ends an episode at step t and cuts both the bootstrap and the recursion,
    so no value or advantage leaks in from the next, unrelated episode of the buffer.
    ``last_value`` is V after the final step, used only when that step is not done; ``None``
    treats the buffer end as terminal. Simplifications: one environment per buffer (1-D
    inputs, no batch axis), a Python loop over T (T is a few hundred turns), no truncation
    distinct from termination. Computes in float64 if any input is float64, else float32.
    """
    if not rewards.dim() == values.dim() == dones.dim() == 1:
        raise ValueError("gae expects 1-D tensors [T]")
    dtype = _float_dtype(rewards, values)
    rewards, values = rewards.to(dtype), values.to(dtype)  # [T]
    not_done = 1.0 - dones.to(dtype)  # [T]
    tail = torch.as_tensor(0.0 if last_value is None else last_value, dtype=dtype)
    next_values = torch.cat([values[1:], tail.reshape(1).to(values.device)])  # [T]
    deltas = rewards + gamma * next_values * not_done - values  # [T]
    advantages = torch.zeros_like(deltas)  # [T]
    running = deltas.new_zeros(())
    for t in reversed(range(deltas.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values


@per_group
def group_advantages(rewards: Tensor, normalize_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO advantages: each reward against the other samples of its prompt's group.

    ``rewards`` is [B, G] (B prompts, G samples each). Returns (r - mean_g) / (std_g + eps)
    with the POPULATION std (divide by G, ``unbiased=False``), or just r - mean_g when
    ``normalize_std`` is False (the Dr. GRPO variant). A group whose rewards are all equal
    carries no learning signal and gets exactly zero advantage, even where floating-point
    rounding would leave a tiny non-zero centred value. One scalar per sample: the caller
    broadcasts it over the sample's tokens.
    """
    rewards = rewards.to(_float_dtype(rewards))  # [B, G]
    centred = rewards - rewards.mean(dim=-1, keepdim=True)  # [B, G]
    if normalize_std:
        centred = centred / (rewards.std(dim=-1, unbiased=False, keepdim=True) + eps)  # [B, G]
    constant = rewards.amax(dim=-1, keepdim=True) == rewards.amin(dim=-1, keepdim=True)  # [B, 1]
    return torch.where(constant, torch.zeros_like(centred), centred)  # [B, G]


@per_group
def group_mean_baseline(rewards: Tensor, leave_one_out: bool = False) -> Tensor:
    """REINFORCE advantages: reward minus the mean reward of its group, no std scaling.

    ``rewards`` is [B, G]. With ``leave_one_out`` the baseline for sample i is the mean of the
    other G - 1 samples (RLOO), which keeps the estimator unbiased; it equals
    G / (G - 1) * (r_i - mean_g) and needs G >= 2.
    """
    rewards = rewards.to(_float_dtype(rewards))  # [B, G]
    group = rewards.shape[-1]
    if leave_one_out and group < 2:
        raise ValueError("leave-one-out baseline needs at least 2 samples per group")
    centred = rewards - rewards.mean(dim=-1, keepdim=True)  # [B, G]
    return centred * group / (group - 1) if leave_one_out else centred


def normalize(
    x: Tensor, mask: Tensor | None = None, eps: float = 1e-5, all_reduce: Callable[[list[float]], Tensor] | None = None
) -> Tensor:
    """Buffer-wide whitening (x - mean) / (std + eps) over the real entries of ``x``.

    This is the paper's advantage normalisation. ``mask`` (same shape as ``x``, or
    broadcastable) selects the entries that enter the mean and the POPULATION std; masked-out
    entries are returned as 0 and may hold anything, inf included. No mean is added back.
    ``all_reduce`` (summing a vector over processes, ``sweeps.parallel.world.all_reduce``)
    makes the buffer the union of every rank's entries: each rank's ``x`` is whitened with the
    mean and std of all of them (two reductions: the sums, then the squared deviations).
    """
    mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.bool().expand_as(x)
    if all_reduce is None:
        mean = masked_mean(x, mask)  # []
        centred = torch.where(mask, x - mean, torch.zeros_like(x))  # same shape as x
        std = masked_mean(centred.square(), mask).sqrt()  # []
        return centred / (std + eps)
    total, count = all_reduce([float(torch.where(mask, x, torch.zeros_like(x)).sum()), float(mask.sum())]).tolist()
    mean = total / max(count, 1.0)
    centred = torch.where(mask, x - mean, torch.zeros_like(x))  # same shape as x
    std = (float(all_reduce([float(centred.square().sum())])[0]) / max(count, 1.0)) ** 0.5
    return centred / (std + eps)
