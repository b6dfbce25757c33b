"""Advantage estimators against numbers worked out by hand in the comments."""

import math

import pytest
import torch

from sweeps.rl.advantages import gae, group_advantages, group_mean_baseline, normalize

F64 = torch.float64


def close(actual, expected, atol=1e-12):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


# A flat buffer of 4 turns, two episodes: A = steps 0, 1 (ends at 1), B = steps 2, 3 (ends at 3).
REWARDS = [0.0, 1.5, 0.0, 2.0]
VALUES = [0.5, 1.0, 0.5, 1.0]
DONES = [0, 1, 0, 1]
# gamma = 0.9, lam = 0.95, so gamma * lam = 0.855.


def buffer(dones=DONES):
    return torch.tensor(REWARDS, dtype=F64), torch.tensor(VALUES, dtype=F64), torch.tensor(dones)


def test_gae_cuts_the_recursion_at_episode_end():
    adv, ret = gae(*buffer(), gamma=0.9, lam=0.95)
    # Episode B, backwards:
    #   t=3 done: delta3 = r3 - V3 = 2.0 - 1.0 = 1.0;               A3 = 1.0
    #   t=2:      delta2 = r2 + 0.9 * V3 - V2 = 0 + 0.9 - 0.5 = 0.4; A2 = 0.4 + 0.855 * 1.0 = 1.255
    # Episode A, backwards (done at 1: no V2 bootstrap and no A2 carried over):
    #   t=1 done: delta1 = r1 - V1 = 1.5 - 1.0 = 0.5;               A1 = 0.5
    #   t=0:      delta0 = 0 + 0.9 * V1 - V0 = 0.9 - 0.5 = 0.4;      A0 = 0.4 + 0.855 * 0.5 = 0.8275
    close(adv, [0.8275, 0.5, 1.255, 1.0])
    # Returns R = A + V.
    close(ret, [1.3275, 1.5, 1.755, 2.0])
    assert adv.dtype == F64 and ret.dtype == F64


def test_gae_leak_when_done_is_dropped_is_exactly_the_bootstrap_from_the_next_episode():
    cut, _ = gae(*buffer(), gamma=0.9, lam=0.95)
    leaky, _ = gae(*buffer([0, 0, 0, 1]), gamma=0.9, lam=0.95)
    # Without the done at step 1 (the paper's bug):
    #   delta1' = r1 + 0.9 * V2 - V1 = 1.5 + 0.45 - 1.0 = 0.95
    #   A1' = delta1' + 0.855 * A2 = 0.95 + 0.855 * 1.255 = 0.95 + 1.073025 = 2.023025
    # so A1' - A1 = gamma * V2 + gamma * lam * A2 = 0.45 + 1.073025 = 1.523025,
    # all of it borrowed from episode B; A0' = 0.4 + 0.855 * 2.023025 = 2.129686375.
    close(leaky, [2.129686375, 2.023025, 1.255, 1.0])
    close(leaky[1] - cut[1], 0.9 * VALUES[2] + 0.9 * 0.95 * cut[2].item())
    close(leaky[1] - cut[1], 1.523025)
    close(leaky[2:], cut[2:])  # episode B does not depend on episode A


def test_gae_bootstraps_from_last_value_only_when_the_last_step_is_not_done():
    r, v = torch.tensor([1.0], dtype=F64), torch.tensor([0.5], dtype=F64)
    # Not done, last_value 2.0: delta = 1 + 0.9 * 2 - 0.5 = 2.3.
    close(gae(r, v, torch.tensor([0]), last_value=2.0)[0], [2.3])
    # Not done, no last_value: the buffer end is terminal, delta = 1 - 0.5 = 0.5.
    close(gae(r, v, torch.tensor([0]))[0], [0.5])
    # Done: last_value is ignored.
    close(gae(r, v, torch.tensor([1]), last_value=2.0)[0], [0.5])


def test_gae_keeps_float32_and_takes_bool_dones():
    r, v, d = buffer()
    adv, _ = gae(r.float(), v.float(), d.bool())
    assert adv.dtype == torch.float32
    close(adv, [0.8275, 0.5, 1.255, 1.0], atol=1e-6)


def test_gae_has_no_graph():
    r, v, d = buffer()
    adv, ret = gae(r, v.requires_grad_(), d)
    assert not adv.requires_grad and not ret.requires_grad


def test_group_advantages_population_std_and_zero_for_constant_groups():
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0]], dtype=F64)
    # Group 0: mean 0.5, population std sqrt(mean((+-0.5)^2)) = 0.5,
    #   A = +-0.5 / (0.5 + 1e-6) = +-0.999998000004.
    # Group 1: all equal -> std 0 -> advantage exactly 0.
    a = 0.5 / (0.5 + 1e-6)
    close(group_advantages(rewards), [[a, -a, a, -a], [0.0, 0.0, 0.0, 0.0]])
    close(group_advantages(rewards, normalize_std=False), [[0.5, -0.5, 0.5, -0.5], [0.0] * 4])


def test_group_advantages_zero_when_rounding_would_leave_residue():
    rewards = torch.full((1, 3), 0.1)  # mean of three 0.1s need not be exactly 0.1 in float32
    assert torch.equal(group_advantages(rewards), torch.zeros(1, 3))


def test_group_mean_baseline_plain_and_leave_one_out():
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0]], dtype=F64)
    close(group_mean_baseline(rewards), [[0.5, -0.5, 0.5, -0.5], [0.0] * 4])
    # Leave-one-out: r=1 -> 1 - mean(0, 1, 0) = 2/3; r=0 -> 0 - mean(1, 0, 1) = -2/3.
    t = 2.0 / 3.0
    close(group_mean_baseline(rewards, leave_one_out=True), [[t, -t, t, -t], [0.0] * 4])
    with pytest.raises(ValueError):
        group_mean_baseline(torch.ones(2, 1), leave_one_out=True)


def test_normalize_whole_buffer_and_masked():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    # mean 2.5; population var = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25; std = sqrt(1.25).
    s = math.sqrt(1.25) + 1e-5
    close(normalize(x), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s])
    # A padded entry (inf) neither enters the statistics nor survives in the output.
    padded = torch.tensor([1.0, 2.0, float("inf"), 3.0, 4.0], dtype=F64)
    mask = torch.tensor([1, 1, 0, 1, 1])
    close(normalize(padded, mask), [-1.5 / s, -0.5 / s, 0.0, 0.5 / s, 1.5 / s])
