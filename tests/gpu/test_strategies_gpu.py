"""Strategies on CUDA (NCCL): FSDP with bf16 mixed precision and activation checkpointing,
DeepSpeed ZeRO-2, vLLM colocated with FSDP. Skipped without CUDA; the 2-GPU cases need 2 GPUs,
the DeepSpeed case DeepSpeed, the vLLM case vLLM.

What the CPU suite cannot check: NCCL collectives, FSDP2's bf16 all-gathers and float32
reductions on a GPU, Lightning's DeepSpeed strategy (it refuses CPUs: "The DeepSpeed strategy
is only supported on CUDA GPUs but `CPUAccelerator` is used."), vLLM's external-launcher mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu
BIN = Path(sys.executable).parent
GPU = [
    "model=tiny",
    "task=determinant_small",
    "eval.splits=[id]",
    "eval.size=16",
    "tracking=none",
    "trainer=gpu",
    "trainer.max_steps=20",
    "trainer.save_every=[10,20]",
    "trainer.batch_size=32",
    "trainer.eval_at_start=false",
]


def gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def job(out: Path, *args: str) -> list[dict]:
    res = subprocess.run(
        [str(BIN / "sweeps-train"), *GPU, *args, f"paths.output_dir={out}"], capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stderr[-4000:]
    newest = max(out.glob("*/*/tiny/determinant_small/*/seed=0/metrics.jsonl"), key=lambda p: p.stat().st_mtime)
    return [json.loads(line) for line in newest.read_text().splitlines()]


def losses(recs: list[dict]) -> list[float]:
    return [r["train/loss"] for r in recs if "train/loss" in r]


def test_fsdp_bf16_with_checkpointing_on_one_gpu_tracks_the_plain_run(tmp_path):
    plain = losses(job(tmp_path / "plain"))
    fsdp = losses(job(tmp_path / "fsdp", "trainer/strategy=fsdp", "model.gradient_checkpointing=true"))
    assert len(plain) == len(fsdp) == 20
    assert all(abs(a - b) < 0.05 * abs(a) for a, b in zip(plain, fsdp)), (plain, fsdp)  # bf16 compute both
    assert fsdp[-1] < fsdp[0]


@pytest.mark.skipif(gpus() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus_give_the_one_gpu_curve(tmp_path, strategy):
    one = losses(job(tmp_path / "one", "trainer.precision=32-true"))
    two = losses(
        job(tmp_path / "two", "trainer.precision=32-true", "trainer.devices=2", f"trainer/strategy={strategy}")
    )
    assert two == pytest.approx(one, rel=1e-4)


@pytest.mark.skipif(gpus() < 2, reason="needs 2 GPUs")
def test_grpo_fsdp_on_two_gpus_matches_one_gpu_counts(tmp_path):
    sft = tmp_path / "rl"
    job(sft, "study=rl")
    rl = [
        "study=rl",
        "algo=grpo",
        "init.step=20",
        "trainer.max_steps=3",
        "trainer.save_every=3",
        "trainer.precision=32-true",
        "algo.optimizer.lr=3e-4",
    ]
    one = [r for r in job(sft, *rl) if "rl/reward_mean" in r]
    two = [
        r
        for r in job(sft, *rl, "init.sft_study=rl", "study=rl2", "trainer.devices=2", "trainer/strategy=fsdp")
        if "rl/reward_mean" in r
    ]
    assert [r["rl/reward_mean"] for r in two[:1]] == [r["rl/reward_mean"] for r in one[:1]]  # the same first episodes


def test_deepspeed_stage_2_sft_on_one_gpu(tmp_path):
    pytest.importorskip("deepspeed")
    recs = job(tmp_path, "trainer/strategy=deepspeed_stage_2")
    assert len(losses(recs)) == 20 and losses(recs)[-1] < losses(recs)[0]
    assert any("eval/id/success" in r for r in recs)


@pytest.mark.skipif(gpus() < 2, reason="needs 2 GPUs")
def test_vllm_colocated_with_fsdp_on_two_gpus(tmp_path):
    """One engine per rank (external launcher), weights gathered from FSDP shards and pushed every
    step, sleep mode between sampling and the update: the sampler must follow the trainer."""
    pytest.importorskip("vllm")
    sft = tmp_path / "rl"
    job(sft, "study=rl", "model.dtype=bfloat16")
    recs = job(
        sft,
        "study=rl",
        "model.dtype=bfloat16",
        "algo=grpo",
        "init.step=20",
        "trainer.max_steps=3",
        "trainer.save_every=3",
        "rollout=vllm",
        "rollout.enable_sleep_mode=true",
        "rollout.max_model_len=1024",
        "trainer.devices=2",
        "trainer/strategy=fsdp",
    )
    steps = [r for r in recs if "rl/logp_mismatch_mean" in r]
    assert len(steps) == 3 and all(r["rl/logp_mismatch_mean"] < 0.05 for r in steps)
