"""Losses, KL estimators and log-probs against numbers worked out by hand in the comments."""

import math

import pytest
import torch

from sweeps.rl.kl import k1, k2, k3, kl_penalty, token_logprobs
from sweeps.rl.losses import (
    clipped_surrogate,
    clipped_value_loss,
    entropy_from_logits,
    masked_mean,
    policy_gradient_loss,
    seq_mean,
    token_mean,
)

F64 = torch.float64


def close(actual, expected, atol=1e-12):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


# Two turns, T = 3. Turn 0 has A = +1 and two real tokens; turn 1 has A = -1 and three.
RATIOS = [[1.2, 1.0, 1.0], [0.8, 1.05, 1.5]]
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
ADV = torch.tensor([1.0, -1.0], dtype=F64)


def surrogate_inputs():
    old_logp = torch.full((2, 3), -1.0, dtype=F64)  # [N, T]
    logp = (old_logp + torch.tensor(RATIOS, dtype=F64).log()).requires_grad_()  # [N, T]
    return logp, old_logp


def test_clipped_surrogate_by_hand():
    logp, old_logp = surrogate_inputs()
    loss, stats = clipped_surrogate(logp, old_logp, ADV, MASK, clip=0.1, agg=token_mean)
    # Per token max(-A r, -A clip(r, 0.9, 1.1)):
    #   A=+1, r=1.2 : max(-1.2, -1.1) = -1.1   clipped term active
    #   A=+1, r=1.0 : max(-1.0, -1.0) = -1.0
    #   A=-1, r=0.8 : max( 0.8,  0.9) =  0.9   clipped term active
    #   A=-1, r=1.05: max(1.05, 1.05) =  1.05
    #   A=-1, r=1.5 : max( 1.5,  1.1) =  1.5   wrong-way ratio: never clipped
    # token-mean = (-1.1 - 1.0 + 0.9 + 1.05 + 1.5) / 5 = 1.35 / 5 = 0.27
    close(loss, 0.27)
    close(stats["clip_frac"], 2 / 5)
    # ratio_mean = (1.2 + 1.0 + 0.8 + 1.05 + 1.5) / 5 = 5.55 / 5 = 1.11
    close(stats["ratio_mean"], 1.11)
    # approx_kl = mean((r - 1) - log r):
    #   1.2: 0.2 - 0.1823216 = 0.0176784; 1.0: 0; 0.8: -0.2 + 0.2231436 = 0.0231436
    #   1.05: 0.05 - 0.0487902 = 0.0012098; 1.5: 0.5 - 0.4054651 = 0.0945349
    #   sum 0.1365667 / 5 = 0.0273133
    close(stats["approx_kl"], 0.0273133, atol=1e-7)
    # seq-mean: turn 0 (-1.1 - 1.0) / 2 = -1.05; turn 1 (0.9 + 1.05 + 1.5) / 3 = 1.15; mean 0.05
    seq_loss, _ = clipped_surrogate(logp, old_logp, ADV, MASK, clip=0.1, agg=seq_mean)
    close(seq_loss, 0.05)


def test_clipped_surrogate_gradients_are_finite_and_zero_where_clipped_or_padded():
    logp, old_logp = surrogate_inputs()
    loss, _ = clipped_surrogate(logp, old_logp, ADV, MASK, clip=0.1)
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    # d loss / d logp = -A r / 5 on unclipped real tokens, 0 on clipped or padded ones.
    expected = [[0.0, -1.0 / 5, 0.0], [0.0, 1.05 / 5, 1.5 / 5]]
    close(logp.grad, expected, atol=1e-12)


def test_clipped_surrogate_has_no_large_ratio_hack():
    # A < 0 and r = 20: the pessimistic max keeps the unclipped -A r = 20 (the paper switched
    # to the clipped term, 1.1, whenever a ratio exceeded 10).
    logp = torch.tensor([[math.log(20.0)]], dtype=F64)
    old_logp, mask = torch.zeros(1, 1, dtype=F64), torch.ones(1, 1)
    adv = torch.tensor([-1.0], dtype=F64)
    loss, stats = clipped_surrogate(logp, old_logp, adv, mask)
    close(loss, 20.0)
    close(stats["clip_frac"], 0.0)


def test_clipped_surrogate_token_advantages_match_sequence_advantages():
    logp, old_logp = surrogate_inputs()
    per_seq, _ = clipped_surrogate(logp, old_logp, ADV, MASK)
    per_token, _ = clipped_surrogate(logp, old_logp, ADV[:, None].expand(2, 3), MASK)
    close(per_token, per_seq.item())


@pytest.mark.parametrize("agg", [token_mean, seq_mean])
def test_padding_never_changes_the_losses(agg):
    torch.manual_seed(0)
    logp, old_logp = surrogate_inputs()
    adv = ADV[:, None].expand(2, 3).clone()  # [N, T]
    pad = ~MASK.bool()
    base, base_stats = clipped_surrogate(logp, old_logp, adv, MASK, agg=agg)
    base_pg = policy_gradient_loss(logp, adv, MASK, agg=agg)
    for junk in (1e3, -1e3, float("inf"), float("nan")):
        logp2 = torch.where(pad, torch.tensor(junk, dtype=F64), logp.detach()).requires_grad_()
        old2 = torch.where(pad, torch.tensor(-junk, dtype=F64), old_logp)
        adv2 = torch.where(pad, torch.tensor(junk, dtype=F64), adv)
        loss, stats = clipped_surrogate(logp2, old2, adv2, MASK, agg=agg)
        pg = policy_gradient_loss(logp2, adv2, MASK, agg=agg)
        assert torch.equal(loss, base) and torch.equal(pg, base_pg)
        assert all(torch.equal(stats[k], base_stats[k]) for k in base_stats)
        (loss + pg).backward()
        assert torch.isfinite(logp2.grad).all() and (logp2.grad[pad] == 0).all()


def test_seq_mean_skips_fully_padded_sequences():
    logp, old_logp = surrogate_inputs()
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    # Only turn 0 counts: (-1.1 - 1.0) / 2 = -1.05; the empty turn does not dilute it.
    loss, _ = clipped_surrogate(logp, old_logp, ADV, mask, agg=seq_mean)
    close(loss, -1.05)


def test_clipped_value_loss_by_hand():
    values = torch.tensor([1.0, 3.0, -2.0], dtype=F64, requires_grad=True)
    old = torch.tensor([0.5, 2.0, -1.0], dtype=F64)
    returns = torch.tensor([2.0, 2.0, -4.0], dtype=F64)
    # clip 0.2: V_clip = old + clamp(V - old, -0.2, 0.2) = [0.7, 2.2, -1.2]
    #   n0: (1 - 2)^2 = 1.0,  (0.7 - 2)^2 = 1.69 -> 1.69 (clipping makes it worse: pessimistic)
    #   n1: (3 - 2)^2 = 1.0,  (2.2 - 2)^2 = 0.04 -> 1.0
    #   n2: (-2 + 4)^2 = 4.0, (-1.2 + 4)^2 = 7.84 -> 7.84
    #   0.5 * (1.69 + 1.0 + 7.84) / 3 = 0.5 * 3.51 = 1.755
    loss = clipped_value_loss(values, old, returns, clip=0.2)
    close(loss, 1.755)
    loss.backward()
    # Only n1 takes the unclipped branch: d/dV 0.5 * (V - R)^2 / 3 = (3 - 2) / 3.
    close(values.grad, [0.0, 1.0 / 3, 0.0])
    # A huge clip is plain 0.5 * MSE: 0.5 * (1 + 1 + 4) / 3 = 1.0
    close(clipped_value_loss(values, old, returns, clip=1e9), 1.0)


def test_policy_gradient_loss_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.25), 0.0]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0]])
    # -A log p with A = 2: 2 * log 2 = 1.3862944 and 2 * log 4 = 2.7725887; mean = 3 log 2.
    loss = policy_gradient_loss(logp, torch.tensor([2.0], dtype=F64), mask)
    close(loss, 3 * math.log(2))
    loss.backward()
    close(logp.grad, [[-1.0, -1.0, 0.0]])  # -A / (2 tokens)


def test_entropy_from_logits_by_hand():
    # Token 0: uniform over 3 -> log 3 = 1.0986123.
    # Token 1: p = (0.5, 0.25, 0.25) -> 0.5 log 2 + 2 * 0.25 log 4 = 1.5 log 2 = 1.0397208.
    peaked = [math.log(0.5), math.log(0.25), math.log(0.25)]
    logits = torch.tensor([[[0.0, 0.0, 0.0], peaked]], dtype=F64)  # [1, 2, 3]
    logits.requires_grad_()
    both = entropy_from_logits(logits, torch.tensor([[1, 1]]))
    close(both, (math.log(3) + 1.5 * math.log(2)) / 2)
    close(entropy_from_logits(logits, torch.tensor([[1, 0]])), math.log(3))
    both.backward()
    assert torch.isfinite(logits.grad).all()


def test_masked_mean_over_a_dim_and_empty_mask():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 5.0, 7.0]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    close(masked_mean(x, mask), 1.5)
    close(masked_mean(x, mask, dim=-1), [1.5, 0.0])


def test_k3_by_hand():
    logp = torch.tensor([[math.log(0.5)]], dtype=F64)
    ref = torch.tensor([[math.log(0.25)]], dtype=F64)
    # ref - logp = -log 2: k3 = exp(-log 2) + log 2 - 1 = 0.5 + 0.6931472 - 1 = 0.1931472
    close(kl_penalty(logp, ref, k3), [[0.5 + math.log(2) - 1]])
    close(kl_penalty(logp, ref, k3), [[0.1931472]], atol=1e-7)
    # k1 = log 2 = 0.6931472; k2 = 0.5 * (log 2)^2 = 0.2402265
    close(kl_penalty(logp, ref, k1), [[math.log(2)]])
    close(kl_penalty(logp, ref, k2), [[0.5 * math.log(2) ** 2]])


def test_k1_and_k3_are_unbiased_under_the_policy():
    # p = (0.5, 0.25, 0.25), ref = (0.25, 0.25, 0.5):
    # KL(p || ref) = 0.5 log 2 + 0.25 log 1 + 0.25 log 0.5 = 0.25 log 2 = 0.1732868.
    # Weighting each outcome's estimate by p gives the expectation over samples from p exactly.
    p = torch.tensor([0.5, 0.25, 0.25], dtype=F64)
    ref = torch.tensor([0.25, 0.25, 0.5], dtype=F64)
    for kind in (k1, k3):
        close((p * kl_penalty(p.log(), ref.log(), kind)).sum(), 0.25 * math.log(2))


def test_k3_is_non_negative_on_random_inputs():
    torch.manual_seed(0)
    logp = torch.randn(64, 128) * 3
    for ref in (torch.randn(64, 128) * 3, logp + torch.randn(64, 128) * 1e-7, logp.clone()):
        assert (kl_penalty(logp, ref, k3) >= 0).all()


def test_token_logprobs_matches_manual_softmax():
    logits = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]], dtype=F64, requires_grad=True)
    tokens = torch.tensor([[2, 1]])
    # Token 0: e^3 / (e + e^2 + e^3) -> log = 3 - log(e + e^2 + e^3) = -0.4076059645
    # Token 1: uniform -> -log 3 = -1.0986122887
    lp = token_logprobs(logits, tokens)
    close(lp, [[3 - math.log(math.e + math.e**2 + math.e**3), -math.log(3)]])
    close(lp, [[-0.4076059645, -1.0986122887]], atol=1e-10)
    # Temperature 0.5 doubles the logits: token 0 -> 6 - log(e^2 + e^4 + e^6).
    manual = torch.softmax(logits.detach() / 0.5, dim=-1)
    hot = token_logprobs(logits, tokens, temperature=0.5)
    close(hot, [[manual[0, 0, 2].log(), manual[0, 1, 1].log()]])
    lp.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_token_logprobs_upcasts_half_precision():
    logits = torch.randn(2, 4, 7).bfloat16()
    out = token_logprobs(logits, torch.randint(0, 7, (2, 4)))
    assert out.dtype == torch.float32 and out.shape == (2, 4)
