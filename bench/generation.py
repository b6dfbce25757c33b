"""Generation throughput: our batched sampler vs Hugging Face ``generate`` (Step 7, item 1).

Same model, prompts, lengths and sampling settings for every path, one torch thread:

- **ours**: ``sweeps.generation.hf.generate`` — one left-padded batch, KV cache, per-prompt
  Gumbel-max sampling with one seeded generator per row (batch-invariant samples).
- **generate, batch 1**: ``model.generate`` called one prompt at a time (the paper's code path).
- **generate, batched**: ``model.generate`` on the same left-padded batch with its KV cache.

Sampling: temperature 1.0, top-p 1.0, top-k 0, ``max_new_tokens`` new tokens, eos disabled (so
every path generates exactly the same number of tokens). Shapes: ``tiny`` (4 layers, hidden
128, MLP 384) and ``small`` (8 layers, hidden 512, MLP 1536), random init, with the project's
tokenizer; 16 prompts x 8 samples. Prints medians over repeats and the ratios against batched
``generate`` (the named baseline), plus machine facts.

    .venv/bin/python bench/generation.py            # tiny and small, 3 repeats
    .venv/bin/python bench/generation.py --tiny     # seconds (smoke)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import transformers

from sweeps.generation.base import SamplingParams
from sweeps.generation.hf import generate
from sweeps.models.tokenizer import build_tokenizer

SHAPES = {
    "tiny": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4),
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8),
}


def build(shape: str, tok) -> torch.nn.Module:
    cfg = transformers.LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id, max_position_embeddings=512,
                                   tie_word_embeddings=True, **SHAPES[shape])
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(cfg).eval()


def prompts(tok, n: int) -> list[list[int]]:
    texts = [f"Rule: J=10 Q=10 K=10. Cards: {i % 13 + 1} {i * 7 % 13 + 1} Q 7. Target: 24." for i in range(n)]
    return [tok(t, add_special_tokens=False)["input_ids"][: 20 + i % 9] for i, t in enumerate(texts)]


def run_ours(model, batch, new, pad):
    sp = SamplingParams(max_new_tokens=new, temperature=1.0)
    return generate(model, batch, sp, pad_id=pad, eos_ids=[-1], seeds=list(range(len(batch))))


def run_generate(model, batch, new, pad, batch_size):
    for i in range(0, len(batch), batch_size):
        chunk = batch[i : i + batch_size]
        L = max(map(len, chunk))
        ids = torch.tensor([[pad] * (L - len(p)) + p for p in chunk])          # [B, L] left-padded
        mask = (torch.arange(L)[None] >= torch.tensor([L - len(p) for p in chunk])[:, None]).long()
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=True,
                       temperature=1.0, top_p=1.0, top_k=0, pad_token_id=pad, eos_token_id=None)


def median_time(fn, repeats: int) -> float:
    fn()                                                                      # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="smoke sizes: seconds")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = build_tokenizer()
    n_prompts, samples, new = (4, 2, 4) if args.tiny else (16, 8, 16)
    shapes = ["tiny"] if args.tiny else ["tiny", "small"]
    batch = [p for p in prompts(tok, n_prompts) for _ in range(samples)]
    print(f"# generation bench ({'tiny sizes' if args.tiny else 'full'})")
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    print(f"{n_prompts} prompts x {samples} samples x {new} new tokens, temperature 1.0; medians of {args.repeats}\n")
    print("| shape | path | s | samples/s | tokens/s | vs batched generate |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        model = build(shape, tok)
        pad = tok.pad_token_id
        paths = {
            "generate, batch 1": lambda: run_generate(model, batch, new, pad, 1),
            "generate, batched": lambda: run_generate(model, batch, new, pad, len(batch)),
            "ours (sweeps hf)": lambda: run_ours(model, batch, new, pad),
        }
        with torch.inference_mode():
            times = {name: median_time(fn, args.repeats) for name, fn in paths.items()}
        base = times["generate, batched"]
        for name, t in times.items():
            print(f"| {shape} | {name} | {t:.3f} | {len(batch) / t:.0f} | {len(batch) * new / t:.0f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
