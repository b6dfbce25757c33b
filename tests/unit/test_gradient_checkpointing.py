"""model.gradient_checkpointing=true: the same loss and gradients, each block run twice."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from tests.conftest import CONF


def loss_grads_and_block_calls(checkpointing: bool):
    from sweeps.models.build import build

    cfg = OmegaConf.load(CONF / "model" / "tiny.yaml")
    cfg.gradient_checkpointing = checkpointing
    model, _ = build(cfg)
    model.train()
    calls = []
    # a pre-hook: torch's non-reentrant recompute stops once the last saved tensor is rebuilt,
    # before the block's final outputs (and their forward hooks) are reached
    model.model.layers[0].self_attn.q_proj.register_forward_pre_hook(lambda *a: calls.append(1))
    ids = torch.randint(5, 60, (3, 12), generator=torch.Generator().manual_seed(0))  # [B, T]
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}, len(calls)


def test_checkpointing_recomputes_each_block_and_changes_no_number():
    plain_loss, plain_grads, plain_calls = loss_grads_and_block_calls(False)
    ckpt_loss, ckpt_grads, ckpt_calls = loss_grads_and_block_calls(True)
    assert plain_calls == 1 and ckpt_calls == 2  # forward, then again in backward
    assert ckpt_loss == plain_loss
    assert max((plain_grads[n] - ckpt_grads[n]).abs().max().item() for n in plain_grads) < 1e-6


def test_checkpointing_is_off_by_default_in_every_model_config():
    for path in sorted((CONF / "model").glob("*.yaml")):
        assert OmegaConf.load(path).gradient_checkpointing is False, path.name
