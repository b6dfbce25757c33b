"""rollout=vllm against the hf backend on a randomly initialised Qwen2.5-0.5B-shaped model.

Needs CUDA and vLLM (skipped otherwise). The model has Qwen2.5-0.5B's architecture but the
project's own tokenizer, random bf16 weights, and is saved to a temporary directory (no hub).
The measured numbers (throughput, log-prob gaps) are printed even without ``-s``.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from omegaconf import OmegaConf

from sweeps.generation.base import SamplingParams, derive_seed
from sweeps.generation.hf import generate as hf_generate
from tests.conftest import CONF

pytestmark = pytest.mark.gpu

QWEN2_5_0_5B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    rope_theta=1e6,
    tie_word_embeddings=True,
    max_position_embeddings=2048,
)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    """(model, tokenizer): random Qwen2.5-0.5B architecture, project tokenizer, bf16 on CUDA."""
    import transformers

    from sweeps.models.checkpoint import load_checkpoint, save_checkpoint
    from sweeps.models.tokenizer import build_tokenizer

    tok = build_tokenizer(model_max_length=2048)
    config = transformers.Qwen2Config(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **QWEN2_5_0_5B,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    path = save_checkpoint(model, tok, tmp_path_factory.mktemp("models") / "qwen2.5-0.5b-random")
    model, tok = load_checkpoint(path, dtype="bfloat16")
    return model.to("cuda").eval(), tok


@pytest.fixture(scope="module")
def rollout(qwen):
    pytest.importorskip("vllm")
    from sweeps.generation.vllm import VLLMRollout

    r = VLLMRollout(*qwen, OmegaConf.load(CONF / "rollout" / "vllm.yaml"))
    yield r
    r.close()


def _prompts(tok, n: int) -> list[list[int]]:
    """n distinct prompts of 6..14 tokens (under one 16-token KV block: no prefix-cache hits)."""
    texts = [f"{i} {7 * i % 100} Find the rank of matrix with values {3 * i} {i * i % 97}" for i in range(n)]
    return [[tok.bos_token_id] + tok.encode(t, add_special_tokens=False)[: 5 + i % 9] for i, t in enumerate(texts)]


@torch.no_grad()
def _hf_rows(model, prompt: list[int], cont: list[int], temperature: float = 1.0) -> torch.Tensor:
    """Teacher-forced next-token log-probs at each position of ``cont``: [T, V]."""
    ids = torch.tensor([prompt + cont], device="cuda")  # [1, P + T]
    logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature  # [T, V]
    return torch.log_softmax(logits, -1)


def _hf_logprobs(model, prompt: list[int], cont: list[int], temperature: float = 1.0) -> list[float]:
    """The training model's log-probs of the tokens of ``cont`` after ``prompt``."""
    rows = _hf_rows(model, prompt, cont, temperature)  # [T, V]
    return rows.gather(-1, torch.tensor(cont, device=rows.device)[:, None]).squeeze(-1).tolist()


def _engine_logprobs(rollout, prompt: list[int], cont: list[int]) -> list[float]:
    """The engine's log-probs of ``cont`` after ``prompt``, read back as prompt log-probs."""
    import vllm

    sp = vllm.SamplingParams(n=1, max_tokens=1, temperature=0.0, prompt_logprobs=0)
    out = rollout.llm.generate([{"prompt_token_ids": prompt + cont}], [sp], use_tqdm=False)[0]
    return [float(out.prompt_logprobs[len(prompt) + i][t].logprob) for i, t in enumerate(cont)]


def _max_gap(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_greedy_matches_the_hf_backend(qwen, rollout, capsys):
    model, tok = qwen
    prompts, sp = _prompts(tok, 32), SamplingParams(max_new_tokens=16)
    ours = rollout.generate(prompts, sp, None)
    ref = hf_generate(model, prompts, sp, pad_id=tok.pad_token_id, eos_ids=rollout.eos)
    first = sum(a[:1] == b[:1] for a, b in zip(ours.tokens, ref.tokens)) / len(prompts)
    first4 = sum(a[:4] == b[:4] for a, b in zip(ours.tokens, ref.tokens)) / len(prompts)
    # Where the backends part ways it must be a near-tie: every token vLLM picked is the training
    # model's argmax up to bf16 noise, and its log-prob matches the training model's.
    regret, gap = 0.0, 0.0
    for p, toks, lps in zip(prompts, ours.tokens, ours.logprobs):
        rows = _hf_rows(model, p, toks)  # [T, V]
        chosen = rows.gather(-1, torch.tensor(toks, device=rows.device)[:, None]).squeeze(-1)  # [T]
        regret = max(regret, (rows.max(-1).values - chosen).max().item())
        gap = max(gap, _max_gap(lps, chosen.tolist()))
    with capsys.disabled():
        print(
            f"\n[vllm greedy vs hf] first token equal {first:.2f}, first 4 equal {first4:.2f}, "
            f"max hf-argmax regret {regret:.4f}, max |dlogp| {gap:.4f}"
        )
    assert first >= 0.75 and first4 >= 0.5  # most agree; near-ties may flip
    assert regret < 0.15 and gap < 0.2
    for toks, lps, done in zip(ours.tokens, ours.logprobs, ours.finished):
        assert len(toks) == len(lps) <= 16 and done == (bool(toks) and toks[-1] in rollout.eos)


def test_same_seeds_same_samples_other_seeds_differ(qwen, rollout):
    _, tok = qwen
    prompts, sp = _prompts(tok, 16), SamplingParams(max_new_tokens=16, temperature=1.0)
    seeds = [derive_seed(0, "vllm-test", i) for i in range(16)]
    a = rollout.generate(prompts, sp, seeds)
    b = rollout.generate(prompts, sp, seeds)
    c = rollout.generate(prompts, sp, [derive_seed(1, "vllm-test", i) for i in range(16)])
    assert a.tokens == b.tokens
    assert sum(a.logprobs, []) == pytest.approx(sum(b.logprobs, []), abs=1e-4)
    assert sum(x != y for x, y in zip(a.tokens, c.tokens)) >= len(prompts) // 2
    assert all(lp <= 1e-6 for lps in a.logprobs for lp in lps)


def test_sampled_logprobs_follow_the_sampling_distribution(qwen, rollout, capsys):
    model, tok = qwen
    prompts, sp = _prompts(tok, 8), SamplingParams(max_new_tokens=12, temperature=0.7)
    seeds = [derive_seed(2, i) for i in range(8)]
    if not rollout.processed_logprobs:
        with pytest.raises(ValueError, match="unscaled distribution"):
            rollout.generate(prompts, sp, seeds)
        pytest.skip("this vLLM returns raw log-probs (needs logprobs_mode='processed_logprobs')")
    out = rollout.generate(prompts, sp, seeds)
    gap = max(
        _max_gap(lps, _hf_logprobs(model, p, toks, 0.7))
        for p, toks, lps in zip(prompts, out.tokens, out.logprobs)
        if toks
    )
    top1 = rollout.generate(prompts, SamplingParams(max_new_tokens=4, temperature=1.0, top_k=1), seeds)
    with capsys.disabled():
        print(f"\n[vllm logprobs at T=0.7] max |dlogp| vs hf log_softmax(logits / 0.7): {gap:.4f}")
    assert gap < 0.2
    # top-k filtering is included: with top_k=1 the log-prob is 0, or -log(m) for an m-way bf16 tie
    ties = [math.exp(-lp) for lps in top1.logprobs for lp in lps]
    assert all(abs(m - round(m)) < 1e-3 for m in ties) and sum(round(m) == 1 for m in ties) >= len(ties) // 2


def test_sync_weights_moves_the_sampler_and_back(qwen, rollout, capsys):
    model, tok = qwen
    prompt = _prompts(tok, 1)[0]
    cont = tok.encode(
        "The answer is 12 and the rank is 3 because the matrix has two equal rows", add_special_tokens=False
    )
    long_prompt = (prompt * 10)[:48]  # three full 16-token KV blocks
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    v0, h0 = _engine_logprobs(rollout, prompt, cont), _hf_logprobs(model, prompt, cont)
    rollout.generate([long_prompt], SamplingParams(max_new_tokens=1), None)  # fills the prefix cache
    try:
        torch.manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:  # every linear / embedding weight
                    p.add_(torch.randn_like(p) * p.float().std().to(p.dtype))
        h1 = _hf_logprobs(model, prompt, cont)
        stale = _engine_logprobs(rollout, prompt, cont)
        rollout.sync_weights(model)
        v1 = _engine_logprobs(rollout, prompt, cont)
        after_long = rollout.generate([long_prompt], SamplingParams(max_new_tokens=1), None)
        hf_long = _hf_logprobs(model, long_prompt, after_long.tokens[0])
    finally:
        model.load_state_dict(original)
        rollout.sync_weights(model)
    v2 = _engine_logprobs(rollout, prompt, cont)
    numbers = dict(
        drift_before=_max_gap(v0, h0),
        stale_vs_trainer=_max_gap(stale, h1),
        synced_vs_trainer=_max_gap(v1, h1),
        moved=_max_gap(v1, v0),
        restored=_max_gap(v2, v0),
        cached_prompt=_max_gap(after_long.logprobs[0], hf_long),
    )
    with capsys.disabled():
        print("\n[vllm sync_weights] max |dlogp|: " + ", ".join(f"{k} {v:.4f}" for k, v in numbers.items()))
    assert numbers["drift_before"] < 0.2 and _max_gap(stale, v0) < 1e-3  # no push, no change
    assert numbers["moved"] > 0.5 and numbers["stale_vs_trainer"] > 0.5
    assert numbers["synced_vs_trainer"] < min(0.2, 0.25 * numbers["stale_vs_trainer"])
    assert numbers["cached_prompt"] < 0.2  # prefix cache was reset
    assert numbers["restored"] < 1e-2


def test_throughput_64_prompts_32_tokens(qwen, rollout, capsys):
    model, tok = qwen
    prompts, sp = _prompts(tok, 64), SamplingParams(max_new_tokens=32, temperature=1.0)
    seeds = [derive_seed(3, i) for i in range(64)]
    rates = {}
    for name, run in [
        ("vllm", lambda: rollout.generate(prompts, sp, seeds)),
        ("hf", lambda: hf_generate(model, prompts, sp, pad_id=tok.pad_token_id, eos_ids=rollout.eos, seeds=seeds)),
    ]:
        run()  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = run()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rates[name] = (len(prompts) / seconds, sum(map(len, out.tokens)) / seconds)
        assert len(out.tokens) == 64 and all(len(t) <= 32 for t in out.tokens)
    with capsys.disabled():
        print(
            "\n[throughput 64 x 32, T=1] "
            + ", ".join(f"{k}: {s:.1f} samples/s, {t:.0f} tokens/s" for k, (s, t) in rates.items())
            + f" on {torch.cuda.get_device_name()}"
        )
