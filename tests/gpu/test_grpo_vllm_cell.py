"""A short GRPO cell with rollout=vllm on a Qwen2.5-0.5B-shaped random model (CUDA + vLLM).

The "SFT checkpoint" is the random model saved where the RL job looks for it; the job then runs
three GRPO steps with the vLLM engine as the sampler. After every optimiser step the weights
are pushed, so the sampler's log-probs must keep matching the trainer's (rl/logp_mismatch_*),
while the weights move (else nothing was tested).
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import compose
from tests.gpu.test_vllm_rollout import QWEN2_5_0_5B

pytestmark = pytest.mark.gpu


def test_grpo_cell_with_vllm_pushes_weights(tmp_path):
    pytest.importorskip("vllm")
    import transformers

    from sweeps.cli.train import train
    from sweeps.models.checkpoint import save_checkpoint
    from sweeps.models.tokenizer import build_tokenizer
    from sweeps.runs import Run, run_dir

    arch = {k: v for k, v in QWEN2_5_0_5B.items()}
    tok = build_tokenizer(model_max_length=2048)
    config = transformers.Qwen2Config(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **arch,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    sft = run_dir(tmp_path, "gpu", "sft", "tiny", "determinant_small", "base", 0)
    save_checkpoint(model, tok, Run(sft).ckpt(0))
    overrides = [f"model.arch.{k}={v}" for k, v in arch.items()] + [
        "model.arch.config_class=Qwen2Config",
        "model.dtype=bfloat16",
        "task=determinant_small",
        "algo=grpo",
        "algo.group_size=8",
        "algo.optimizer.lr=1e-4",
        "rollout=vllm",
        "trainer=smoke",
        "trainer.batch_size=32",
        "trainer.max_steps=3",
        "trainer.save_every=3",
        "trainer.accelerator=gpu",
        "trainer.eval_at_start=false",
        "eval.size=8",
        "eval.splits=[id]",
        "tracking=none",
        "init.step=0",
        "study=gpu",
        f"paths.output_dir={tmp_path}",
    ]
    train(compose(overrides))
    rl = run_dir(tmp_path, "gpu", "grpo", "tiny", "determinant_small", "sft-step=000000", 0)
    recs = [json.loads(x) for x in (rl / "metrics.jsonl").read_text().splitlines() if "rl/logp_mismatch_mean" in x]
    print(
        "per step (mismatch mean, max, rollout s):",
        [(r["rl/logp_mismatch_mean"], r["rl/logp_mismatch_max"], r["time/rollout_s"]) for r in recs],
    )
    assert len(recs) == 3
    assert all(r["rl/logp_mismatch_mean"] < 0.05 for r in recs)  # bf16 sampler vs trainer, after each push
    moved = transformers.AutoModelForCausalLM.from_pretrained(Run(rl).ckpt(3), dtype=torch.bfloat16)
    start = transformers.AutoModelForCausalLM.from_pretrained(Run(sft).ckpt(0), dtype=torch.bfloat16)
    assert not torch.equal(moved.model.layers[0].self_attn.q_proj.weight, start.model.layers[0].self_attn.q_proj.weight)
