import pytest
import torch

from sweeps.generation.base import SamplingParams, derive_seed
from sweeps.generation.hf import _filter_logits, generate


def _prompts(tok, n=8):
    texts = [f"Cards: A {i} Q 7 and {3 * i}" for i in range(n)]
    return [tok(t, add_special_tokens=False)["input_ids"][: 4 + i % 5] for i, t in enumerate(texts)]


def test_greedy_matches_hf_generate_one_prompt_at_a_time(tiny):
    model, tok = tiny
    prompts = _prompts(tok)
    out = generate(
        model, prompts, SamplingParams(max_new_tokens=10), pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id]
    )
    for p, got in zip(prompts, out.tokens):
        ref = model.generate(
            torch.tensor([p]),
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )[0, len(p) :].tolist()
        assert got == ref


def test_logprobs_are_those_of_the_chosen_tokens(tiny):
    model, tok = tiny
    p = _prompts(tok, 1)[0]
    out = generate(model, [p], SamplingParams(max_new_tokens=3), pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    seq = torch.tensor([p + out.tokens[0]])
    with torch.no_grad():
        logp = torch.log_softmax(model(seq).logits[0].float(), -1)
    expected = [logp[len(p) - 1 + t, tok_id].item() for t, tok_id in enumerate(out.tokens[0])]
    assert out.logprobs[0] == pytest.approx(expected, abs=1e-4)


def test_sampling_is_seeded_per_prompt_and_batch_invariant(tiny):
    model, tok = tiny
    prompts = _prompts(tok)
    sp = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.95, top_k=40)
    kw = dict(pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    a = generate(model, prompts, sp, seeds=list(range(8)), **kw)
    b = generate(model, prompts[:3], sp, seeds=list(range(3)), **kw)  # smaller batch, same seeds
    c = generate(model, prompts, sp, seeds=list(range(100, 108)), **kw)
    assert a.tokens[:3] == b.tokens
    assert a.tokens != c.tokens


def test_repeated_prompts_share_the_prefill_and_sample_as_if_alone(tiny):
    """A group (the same prompt G times) is prefilled once; each row still samples with its own
    seed exactly as it would alone, with the same log-probs."""
    model, tok = tiny
    prompts = _prompts(tok, 3)
    group = [p for p in prompts for _ in range(4)]  # 3 prompts x 4 samples
    sp = SamplingParams(max_new_tokens=8, temperature=1.0)
    kw = dict(pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    seeds = list(range(len(group)))
    out = generate(model, group, sp, seeds=seeds, **kw)
    for i, p in enumerate(group):
        alone = generate(model, [p], sp, seeds=[seeds[i]], **kw)
        assert out.tokens[i] == alone.tokens[0]
        assert out.logprobs[i] == pytest.approx(alone.logprobs[0], abs=1e-4)
    assert len({tuple(t) for t in out.tokens[:4]}) > 1  # the group's samples differ


def test_top_k_one_is_greedy(tiny):
    model, tok = tiny
    prompts = _prompts(tok)
    kw = dict(pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    g = generate(model, prompts, SamplingParams(max_new_tokens=6), **kw)
    s = generate(model, prompts, SamplingParams(max_new_tokens=6, temperature=0.7, top_k=1), seeds=list(range(8)), **kw)
    assert g.tokens == s.tokens


def test_filter_logits_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # top-p 0.7: mass above token 2 is 0.8 >= 0.7 -> dropped; token 1 has 0.5 above it -> kept
    kept = torch.isfinite(_filter_logits(logits, top_k=0, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(_filter_logits(logits, top_k=3, top_p=1.0))
    assert kept.tolist() == [[True, True, True, False]]


def test_stops_at_eos_and_pads_nothing(tiny):
    model, tok = tiny
    p = _prompts(tok, 1)[0]
    first = generate(model, [p], SamplingParams(max_new_tokens=1), pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    forced_eos = first.tokens[0][0]  # declare the first greedy token to be "eos"
    out = generate(model, [p], SamplingParams(max_new_tokens=10), pad_id=tok.pad_token_id, eos_ids=[forced_eos])
    assert out.tokens[0] == [forced_eos] and out.finished == [True]


def test_derive_seed_is_the_documented_hash_and_moves_with_every_part():
    """blake2b (8 bytes) of "0/10/id/3", read little-endian, top bit dropped: bytes bb 0b 3a 5d d4 b0
    d4 22 -> 0x22d4b0d45d3a0bbb >> 1. Pinned as a literal, so the seed is the same in every process
    and Python version (Python's salted ``hash`` would change it per process)."""
    assert derive_seed(0, 10, "id", 3) == 0x22D4B0D45D3A0BBB >> 1 == 1254912659247924701
    base = (0, 10, "id", 3)  # run seed, step, prompt, sample
    for axis, other in enumerate((1, 11, "ood", 4)):
        moved = base[:axis] + (other,) + base[axis + 1 :]
        assert derive_seed(*moved) != derive_seed(*base), f"part {axis} does not move the seed"
    grid = {derive_seed(s, step, p, i) for s in range(3) for step in range(4) for p in ("id", "ood") for i in range(10)}
    assert len(grid) == 3 * 4 * 2 * 10 and all(0 <= x < 2**63 for x in grid)


def test_bad_sampling_params():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
