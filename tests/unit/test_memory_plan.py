"""The memory plan (sweeps-plan) against numbers computed by hand for Qwen2.5-7B.

Qwen2.5-7B (assets/configs/qwen2_5_7b): d = 3584, I = 18944, L = 28, 28 heads of 128, 4 KV
heads (d_kv = 512), V = 152064, untied. Parameters per block: q 3584*3584 + 3584, k and v
3584*512 + 512 each, o 3584*3584, gate/up/down 3 * 3584*18944, two norms 2*3584 = 233,057,792;
root: embeddings and LM head 2 * 152064*3584 + final norm 3584 = 1,089,998,336; total
28 * 233,057,792 + 1,089,998,336 = 7,615,616,512. Saved activations per token and layer:
6d + 2 d_kv + 4I = 21504 + 1024 + 75776 = 98,304 values.
"""

from __future__ import annotations

import pytest

from sweeps.parallel import memory
from sweeps.schema import build_task
from tests.conftest import compose

GIB = 1024**3
QWEN = ["model=qwen2_5_7b", "model.path=${sweeps_asset:configs/qwen2_5_7b}", "trainer=gpu", "memory.seq_len=1024"]
P, BLOCK, ROOT = 7_615_616_512, 233_057_792, 1_089_998_336


def planned(*overrides: str) -> memory.Plan:
    cfg = compose([*QWEN, *overrides])
    return memory.for_job(cfg, build_task(cfg.task))


def rows(p: memory.Plan) -> dict[str, float]:
    return {c: b for _, c, b, _ in p.rows}


def test_model_counts_are_exact():
    p = planned("memory.gpu_gib=80")
    assert BLOCK * 28 + ROOT == P
    assert rows(p)["parameters"] == P * 2  # bf16, whole on one GPU


def test_sft_fsdp_on_8x80gb_by_hand():
    p = planned("trainer.devices=8", "trainer/strategy=fsdp", "memory.gpu_gib=80")  # 64 / 8 = 8 sequences per rank
    r = rows(p)
    shard = P * 2 / 8  # 1,903,904,128 B
    assert r["parameters"] == r["gradients"] == shard and r["AdamW moments"] == 2 * shard
    assert r["all-gathered units"] == (ROOT + 2 * BLOCK) * 2  # 3,112,227,840 B
    assert r["activations"] == 8 * 1024 * 28 * 98_304 * 2  # 45,097,156,608 B = 42.0 GiB
    assert r["logits"] == 8 * 1024 * 152_064 * 10  # 12,457,082,880 B
    assert r["gathered model"] == P * 2 and r["KV cache"] == 2 * 28 * 512 * 256 * 1024 * 2
    assert p.total == 3 * shard + (shard + (ROOT + 2 * BLOCK) * 2 + r["activations"] + r["logits"]) + 2 * GIB
    assert p.total / GIB == pytest.approx(65.59, abs=0.01) and p.fits()


def test_checkpointing_keeps_one_input_per_layer():
    r = rows(
        planned("trainer.devices=8", "trainer/strategy=fsdp", "memory.gpu_gib=80", "model.gradient_checkpointing=true")
    )
    assert r["activations"] == 8 * 1024 * (28 * 3584 + 98_304) * 2  # 3,254,779,904 B = 3.03 GiB


def test_one_141gb_gpu_refuses_naming_checkpointing_then_the_batch():
    p = planned("memory.gpu_gib=141")  # 64 sequences of 1024 on one GPU
    assert not p.fits()
    with pytest.raises(
        memory.PlanError,
        match=r"needs 487\.6 GiB per GPU but a GPU has 141 GiB: change model\.gradient_checkpointing=true",
    ):
        memory.check(p, False, False, "bfloat16")
    p = planned("memory.gpu_gib=141", "model.gradient_checkpointing=true")
    with pytest.raises(memory.PlanError, match=r"change algo\.micro_batch_size \(RL\) or trainer\.batch_size"):
        memory.check(p, False, True, "bfloat16")  # now the 64 x 1024 x 152064 logits dominate
    ok = planned(
        "memory.gpu_gib=141", "model.gradient_checkpointing=true", "trainer.batch_size=8", "trainer.accumulate=8"
    )
    assert ok.fits(), ok.table()


def test_float32_masters_with_autocast_on_one_gpu_name_the_dtype():
    p = planned(
        "memory.gpu_gib=141", "model.dtype=float32", "model.gradient_checkpointing=true", "trainer.batch_size=8"
    )
    r = rows(p)
    assert r["parameters"] == P * 4 and r["autocast weight copies"] == P * 2
    with pytest.raises(memory.PlanError, match="change model.dtype=bfloat16"):
        memory.check(p, False, True, "float32")


def test_grpo_with_kl_reference_and_vllm_on_8x80gb():
    p = planned(
        "algo=grpo",
        "init.step=10",
        "trainer.devices=8",
        "trainer/strategy=fsdp",
        "memory.gpu_gib=80",
        "algo.kl_coef=0.04",
        "rollout=vllm",
        "model.gradient_checkpointing=true",
    )
    r = rows(p)
    assert r["KL reference model"] == P * 2  # whole on every rank
    assert r["vLLM engine"] == 0.3 * 80 * GIB
    assert r["activations"] == 16 * 1024 * (28 * 3584 + 98_304) * 2  # algo.micro_batch_size = 16 turns
    assert r["KV cache"] == 2 * 28 * 512 * 256 * 1024 * 2  # rollout_batch_size 256 = eval.batch_size
    assert p.fits(), p.table()


def test_a_tokenizer_measures_the_sequences_of_the_tiny_model():
    cfg = compose(["model=tiny", "task=general_points_compact", "memory.gpu_gib=1"])
    p = memory.for_job(cfg, build_task(cfg.task))
    assert "64 x " in dict((c, h) for _, c, _, h in p.rows)["activations"]  # trainer.batch_size 64, one process
    with pytest.raises(ValueError, match="memory.seq_len"):
        c = compose(["model=qwen2_5_7b", "model.path=${sweeps_asset:configs/qwen2_5_7b}"])
        memory.for_job(c, build_task(c.task))  # config only: no tokenizer files


def test_a_sleeping_vllm_engine_counts_only_while_sampling():
    base = [
        "algo=grpo",
        "init.step=10",
        "trainer.devices=8",
        "trainer/strategy=fsdp",
        "memory.gpu_gib=80",
        "model.gradient_checkpointing=true",
        "rollout=vllm",
    ]
    awake, asleep = planned(*base), planned(*base, "rollout.enable_sleep_mode=true")
    assert [p for p, c, _, _ in awake.rows if c == "vLLM engine"] == ["fixed"]
    assert [p for p, c, _, _ in asleep.rows if c == "vLLM engine"] == ["generation"]
    # awake: states 5.32 + training 33.93 (grads 1.77 + units 2.90 + activations 6.06 + logits 23.20)
    # + engine 24 + overhead 2 = 65.26 GiB; asleep: 5.32 + generation (14.19 + 14.00 + 24) + 2 = 59.50 GiB
    assert awake.total / GIB == pytest.approx(65.26, abs=0.01) and asleep.total / GIB == pytest.approx(59.50, abs=0.01)
    assert asleep.total == asleep.phase("states") + asleep.phase("generation") + asleep.phase("fixed")
