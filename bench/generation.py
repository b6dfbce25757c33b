"""Generation throughput: our batched sampler vs Hugging Face ``generate`` (Step 7, item 1).

Same model, prompts, lengths and sampling settings for every path, one torch thread:

- **ours**: ``sweeps.generation.hf.generate`` — one left-padded batch, KV cache, identical prompts
  prefilled once (a GRPO group's G samples share one prompt), per-prompt Gumbel-max sampling
  with one seeded generator per row (batch-invariant samples).
- **generate, batch 1**: ``model.generate`` called one prompt at a time (the paper's code path).
- **generate, batched**: ``model.generate`` on the same left-padded batch with its KV cache
  (the named baseline; it prefills every row, as ``num_return_sequences`` does).

Two workloads: **grouped** (16 prompts x 8 samples, the RL rollout: each prompt repeated 8
times) and **distinct** (128 different prompts, as in evaluation), where sharing the prefill
cannot help and the comparison is the plain decode loop. Sampling: temperature 1.0, top-p 1.0,
top-k 0, ``max_new_tokens`` new tokens, eos disabled (every path generates exactly the same
number of tokens). Shapes: ``tiny`` (4 layers, hidden 128, MLP 384) and ``small`` (8 layers,
hidden 512, MLP 1536), random init (the project's builder), the project's tokenizer, the
GeneralPoints compact prompt rendered with the chat template (67-70 tokens). Medians over
repeats (paths interleaved, one repeat of each in turn), of wall time and of this process's
CPU time (robust to other jobs on the cores), and the ratios against batched ``generate``.

    .venv/bin/python bench/generation.py            # tiny and small, 5 repeats (~4 min on 2 cores)
    .venv/bin/python bench/generation.py --tiny     # seconds (smoke)
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHAPES, clock, compose, machine_line, median, n_params, set_threads, spans  # noqa: E402

from sweeps.generation.base import SamplingParams  # noqa: E402
from sweeps.generation.hf import generate  # noqa: E402


def prompts(tok, task, n: int) -> list[list[int]]:
    from sweeps.episodes import chat_ids

    rng = random.Random(0)
    return [chat_ids(tok, [{"role": "user", "content": task.prompt(task.sample("id", rng))}], True) for _ in range(n)]


def run_ours(model, batch, new, pad):
    sp = SamplingParams(max_new_tokens=new, temperature=1.0)
    return generate(model, batch, sp, pad_id=pad, eos_ids=[-1], seeds=list(range(len(batch))))


def run_generate(model, batch, new, pad, batch_size):
    for i in range(0, len(batch), batch_size):
        chunk = batch[i : i + batch_size]
        L = max(map(len, chunk))
        ids = torch.tensor([[pad] * (L - len(p)) + p for p in chunk])  # [B, L] left-padded
        mask = (torch.arange(L)[None] >= torch.tensor([L - len(p) for p in chunk])[:, None]).long()
        model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            pad_token_id=pad,
            eos_token_id=None,
        )


def interleaved(paths: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per path; one warm-up each, then ``repeats`` rounds of every path."""
    for fn in paths.values():
        fn()
    marks: dict[str, list[tuple[list[float], list[float]]]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t = clock()
            fn()
            marks[name].append(spans([t, clock()]))
    return {k: (median([w[0] for w, _ in v]), median([c[0] for _, c in v])) for k, v in marks.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="smoke sizes: seconds")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-batch1", action="store_true", help="skip the slow one-prompt-at-a-time path")
    args = ap.parse_args()
    set_threads(args.threads)
    from sweeps.models.build import build
    from sweeps.schema import build_task

    task = build_task(compose(["task=general_points_compact"]).task)
    n_prompts, samples, new = (4, 2, 4) if args.tiny else (16, 8, 16)
    shapes = ["tiny"] if args.tiny else ["tiny", "small"]
    print(f"# generation bench ({'tiny sizes' if args.tiny else 'full'})")
    print(machine_line())
    print(
        f"{n_prompts} prompts x {samples} samples (grouped) or {n_prompts * samples} distinct prompts, {new} new "
        f"tokens each, temperature 1.0, eos off; medians of {args.repeats} interleaved repeats\n"
    )
    print(
        "| shape | workload | path | wall s | samples/s | tokens/s | CPU s | wall: vs batched generate "
        "| CPU: vs batched generate |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        model, tok = build(compose(SHAPES[shape]).model)
        model.eval()
        pad = tok.pad_token_id
        pool = prompts(tok, task, n_prompts * samples)
        workloads = {"grouped": [p for p in pool[:n_prompts] for _ in range(samples)], "distinct": pool}
        for wl, batch in workloads.items():
            paths = {}
            if not args.no_batch1 and wl == "grouped":
                paths["generate, batch 1"] = lambda model=model, batch=batch, pad=pad: run_generate(
                    model, batch, new, pad, 1
                )
            paths["generate, batched"] = lambda model=model, batch=batch, pad=pad: run_generate(
                model, batch, new, pad, len(batch)
            )
            paths["ours (sweeps hf)"] = lambda model=model, batch=batch, pad=pad: run_ours(model, batch, new, pad)
            with torch.inference_mode():
                times = interleaved(paths, args.repeats)
            bw, bc = times["generate, batched"]
            for name, (w, c) in times.items():
                print(
                    f"| {shape} ({n_params(model) / 1e6:.2f}M) | {wl} | {name} | {w:.3f} | {len(batch) / w:.0f} | "
                    f"{len(batch) * new / w:.0f} | {c:.3f} | {bw / w:.2f}x | {bc / c:.2f}x |",
                    flush=True,
                )
    print(f"\nat the end: {machine_line().split(', ')[-1]}")


if __name__ == "__main__":
    main()
