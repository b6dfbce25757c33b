"""One update per batch: old_logp is the update's own forward pass, detached (no scoring pass)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sweeps.modules.policy_gradient import PolicyGradientModule
from sweeps.rl.batch import forward_logp, pack
from tests.conftest import compose


def _module(tiny, *overrides):
    model, tok = tiny
    cfg = compose(["algo=grpo", "init.step=1", *overrides])
    task = SimpleNamespace(max_new_tokens=8)
    return PolicyGradientModule(model, tok, task, cfg.algo, None, None, 0, 1), model, tok


def test_reuse_only_with_one_update_per_batch(tiny):
    assert _module(tiny)[0].reuses_logp
    assert not _module(tiny, "algo.epochs=2")[0].reuses_logp
    assert not _module(tiny, "algo.minibatches=2", "algo.group_size=2")[0].reuses_logp


def test_detached_own_logp_gives_the_same_loss_and_gradient_as_a_scoring_pass(tiny):
    module, model, tok = _module(tiny)
    g = torch.Generator().manual_seed(0)
    turns = [
        SimpleNamespace(
            prompt_ids=torch.randint(5, 300, (4 + i,), generator=g).tolist(),
            response_ids=torch.randint(5, 300, (3 + i % 3,), generator=g).tolist(),
            sampler_logprobs=[-1.0] * (3 + i % 3),
        )
        for i in range(6)
    ]
    batch = pack(turns, tok.pad_token_id)
    batch.extras["advantages"] = torch.linspace(-1, 1, 6)
    results = []
    for scored in (True, False):
        sub = batch.select(torch.arange(6))
        with torch.no_grad():
            old = forward_logp(model, sub, module.algo.temperature)[0]
        sub.extras["old_logp"] = old if scored else None
        model.zero_grad()
        loss, _ = module.turn_loss(sub)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((loss.detach(), grads, sub.extras["old_logp"], old))
    (la, ga, _, old), (lb, gb, filled, _) = results
    model.zero_grad()
    assert torch.allclose(la, lb, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ga, gb))
    assert torch.allclose(filled, old, atol=1e-5)  # written back for the mismatch metric
