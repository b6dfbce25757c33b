"""One GRPO step: ours vs TRL ``GRPOTrainer`` vs a hand-written minimal step (Step 7, item 2).

Same random-init model (the project's builder, ``conf/model/tiny.yaml`` and the ``small``
shape), the same task and prompts (GeneralPoints, compact prompt, ID split; 16 prompts x 8
samples per optimiser step, the prompts of steps 0, 1, ... of the RL prompt stream), the same
sampling (temperature 1.0, top-p 1.0, top-k 0, at most 16 new tokens, eos on), the same
objective (group-normalised advantages, clipped surrogate with clip 0.2, token-mean over the
batch, optional k3 KL to the start policy with beta 0.04), AdamW lr 1e-4 (constant),
gradient-norm clip 1.0, micro-batches of 16 sequences (gradient accumulation over 8), one
optimiser step per RL step. One torch thread.

- **ours**: ``PolicyGradientModule`` (``algo=grpo``) with the ``hf`` rollout, built from the
  composed config and driven by the same Lightning trainer (``sweeps.jobs.common.make_trainer``)
  as ``sweeps-train``; checkpoint evaluation is left out (it is not part of a step).
- **TRL**: ``trl.GRPOTrainer`` (version printed), ``num_generations=8``,
  ``per_device_train_batch_size=16`` x ``gradient_accumulation_steps=8`` (one generation batch of
  128 = one optimiser step), ``max_completion_length=16``, ``loss_type="dapo"`` (token mean),
  ``scale_rewards="group"``, ``shuffle_dataset=False``, ``use_cpu``, no vLLM, no bf16/fp16,
  ``report_to="none"``; reward = the same task grader. Run with its default
  ``gradient_checkpointing=True`` and with it off. TRL needs a model path to build its
  reference model, so the (identical) random-init model is saved to a temporary directory and
  loaded from there.
- **floor**: a hand-written minimal GRPO step: our sampler (``sweeps.generation.hf.generate``)
  on the 128 prompts, grading, group-normalised advantages, one forward/backward per
  micro-batch (ratio exp(logp - logp.detach()), as TRL does on-policy), a reference forward when
  beta > 0, clip, AdamW step. No framework.

Wall time per optimiser step (median over ``--steps`` steps after ``--warmup`` warm-up steps),
split into generation (the sampler call) and the rest (grading, scoring, forward/backward,
optimiser). Every path starts from a fresh model with the same init seed.

    .venv/bin/python bench/rl.py                # tiny and small, beta 0 and 0.04 (~30 min, 1 thread)
    .venv/bin/python bench/rl.py --shapes tiny  # minutes
    .venv/bin/python bench/rl.py --tiny         # smoke: tiny shape, 4 prompts x 4 samples x 4 tokens
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHAPES, clock, compose, machine_line, median, set_threads, spans, trl_version_or_none  # noqa: E402

SEED = 0


class Sizes:
    def __init__(self, tiny: bool):
        self.prompts, self.group, self.new_tokens, self.micro = (4, 4, 4, 8) if tiny else (16, 8, 16, 16)

    @property
    def batch(self) -> int:
        return self.prompts * self.group


def config(shape: str, beta: float, sz: Sizes) -> Any:
    return compose(
        [
            "algo=grpo",
            "task=general_points_compact",
            "trainer=rl_cpu",
            "tracking=none",
            f"algo.kl_coef={beta}",
            f"algo.group_size={sz.group}",
            f"algo.micro_batch_size={sz.micro}",
            "algo.optimizer.lr=1e-4",
            "algo.policy_loss.clip=0.2",
            "algo.max_attempts=1",
            f"task.max_new_tokens={sz.new_tokens}",
            f"trainer.batch_size={sz.batch}",
            *SHAPES[shape],
        ]
    )


def step_prompts(cfg: Any, task: Any, n_steps: int, sz: Sizes) -> list[list[Any]]:
    """The examples of RL steps 0..n-1, exactly as ``PromptStream`` yields them (one process:
    all of them, from global index 0)."""
    from sweeps.modules.data import PromptStream

    it = iter(PromptStream(task, SEED, sz.prompts, lambda: 0))
    return [next(it)[1] for _ in range(n_steps)]


class GenTimer:
    """Wraps a generate callable and records the wall and CPU time of every call."""

    def __init__(self, fn):
        self.fn, self.wall, self.cpu = fn, [], []

    def __call__(self, *a, **kw):
        t = clock()
        try:
            return self.fn(*a, **kw)
        finally:
            w, c = spans([t, clock()])
            self.wall += w
            self.cpu += c


def summarize(marks: list[tuple[float, float]], gen: GenTimer, warmup: int, lengths: list[float]) -> dict[str, float]:
    """Durations between consecutive step ends (so everything in the loop counts), warm-up dropped."""
    wall, cpu = (x[warmup:] for x in spans(marks))
    gwall, gcpu = gen.wall[warmup:][: len(wall)], gen.cpu[warmup:][: len(wall)]
    return {
        "step": median(wall),
        "gen": median(gwall),
        "rest": median([s - g for s, g in zip(wall, gwall)]),
        "cpu": median(cpu),
        "gen_cpu": median(gcpu),
        "rest_cpu": median([s - g for s, g in zip(cpu, gcpu)]),
        "n": len(wall),
        "len": sum(lengths) / max(len(lengths), 1),
    }


# --- ours -----------------------------------------------------------------------------------
def run_ours(shape: str, beta: float, sz: Sizes, steps: int, warmup: int) -> dict[str, float]:
    import lightning as L
    from hydra.utils import get_class, get_method

    from sweeps.jobs.common import loader, make_trainer
    from sweeps.models.build import build
    from sweeps.modules.data import PromptStream
    from sweeps.schema import build_task

    cfg = config(shape, beta, sz)
    task = build_task(cfg.task)
    model, tok = build(cfg.model)  # as the SFT job builds its base
    model.train()
    ref = copy.deepcopy(model).eval().requires_grad_(False) if beta > 0 else None  # as jobs/rl.py
    rollout = get_method(cfg.rollout.builder)(model, tok, cfg.rollout)
    gen = GenTimer(rollout.generate)
    rollout.generate = gen
    total = warmup + steps
    module = get_class(cfg.algo.module)(model, tok, task, cfg.algo, rollout, ref, SEED, total)
    ends, lengths = [], []

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            ends.append(clock())
            lengths.append(pl_module.step_metrics.get("rl/response_len", float("nan")))

    trainer = make_trainer(cfg, [StepClock()], max_steps=total * module.updates_per_step)
    start = clock()
    trainer.fit(module, train_dataloaders=loader(PromptStream(task, SEED, sz.prompts, lambda: module.stage_step)))
    return summarize([start] + ends, gen, warmup, lengths)


# --- floor ----------------------------------------------------------------------------------
def run_floor(shape: str, beta: float, sz: Sizes, steps: int, warmup: int) -> dict[str, float]:
    from sweeps.episodes import chat_ids
    from sweeps.generation.base import SamplingParams, derive_seed, eos_ids
    from sweeps.generation.hf import generate
    from sweeps.models.build import build
    from sweeps.schema import build_task

    cfg = config(shape, beta, sz)
    task = build_task(cfg.task)
    model, tok = build(cfg.model)
    ref = copy.deepcopy(model).eval().requires_grad_(False) if beta > 0 else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sp = SamplingParams(max_new_tokens=sz.new_tokens, temperature=1.0, top_p=1.0, top_k=0)
    eos, pad, G = eos_ids(tok, model), tok.pad_token_id, sz.group
    gen = GenTimer(generate)
    ends, lengths = [clock()], []
    for s, examples in enumerate(step_prompts(cfg, task, warmup + steps, sz)):
        prompts = [chat_ids(tok, [{"role": "user", "content": task.prompt(ex)}], True) for ex in examples]
        rows = [p for p in prompts for _ in range(G)]
        model.eval()
        out = gen(
            model, rows, sp, pad_id=pad, eos_ids=eos, seeds=[derive_seed(SEED, "floor", s, i) for i in range(len(rows))]
        )
        model.train()
        rewards = torch.tensor(
            [
                task.grade(examples[i // G], tok.decode(t, skip_special_tokens=True)).reward
                for i, t in enumerate(out.tokens)
            ]
        ).view(-1, G)  # [P, G]
        adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, unbiased=False, keepdim=True) + 1e-6)
        adv = adv.view(-1)  # [N]
        seqs = [p + t for p, t in zip(rows, out.tokens)]
        N, Lmax = len(seqs), max(map(len, seqs))
        ids = torch.full((N, Lmax), pad, dtype=torch.long)
        attn = torch.zeros((N, Lmax), dtype=torch.long)
        resp = torch.zeros((N, Lmax - 1), dtype=torch.bool)
        for n, (p, t) in enumerate(zip(rows, out.tokens)):
            ids[n, : len(p) + len(t)] = torch.tensor(p + t)
            attn[n, : len(p) + len(t)] = 1
            resp[n, len(p) - 1 : len(p) - 1 + len(t)] = True
        tokens = resp.sum().clamp(min=1)
        opt.zero_grad()
        for i in range(0, N, sz.micro):
            sl = slice(i, i + sz.micro)
            Lb = int(attn[sl].sum(1).max())
            x, a, m = ids[sl, :Lb], attn[sl, :Lb], resp[sl, : Lb - 1]
            logp = torch.log_softmax(model(input_ids=x, attention_mask=a).logits[:, :-1].float(), -1)
            logp = logp.gather(-1, x[:, 1:, None]).squeeze(-1)  # [n, T]
            per_tok = -adv[sl, None] * torch.exp(logp - logp.detach())
            if ref is not None:
                with torch.no_grad():
                    rl = torch.log_softmax(ref(input_ids=x, attention_mask=a).logits[:, :-1].float(), -1)
                    rl = rl.gather(-1, x[:, 1:, None]).squeeze(-1)
                d = rl - logp
                per_tok = per_tok + beta * (torch.exp(d) - d - 1)
            (torch.where(m, per_tok, 0.0).sum() / tokens).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ends.append(clock())
        lengths.append(float(tokens) / N)
    return summarize(ends, gen, warmup, lengths)


# --- TRL ------------------------------------------------------------------------------------
def run_trl(shape: str, beta: float, sz: Sizes, steps: int, warmup: int, checkpointing: bool) -> dict[str, float]:
    import transformers
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from sweeps.models.build import build
    from sweeps.schema import build_task

    cfg = config(shape, beta, sz)
    task = build_task(cfg.task)
    model, tok = build(cfg.model)
    total = warmup + steps
    examples = [ex for step in step_prompts(cfg, task, total, sz) for ex in step]
    data = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": task.prompt(ex)}] for ex in examples],
            "idx": list(range(len(examples))),
        }
    )

    def reward(prompts, completions, idx, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(task.grade(examples[i], t).reward) for i, t in zip(idx, texts)]

    ends, lengths = [], []

    class StepClock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(clock())

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)  # TRL builds its reference model from a path
        tok.save_pretrained(tmp)
        args = GRPOConfig(
            output_dir=str(Path(tmp) / "out"),
            use_cpu=True,
            bf16=False,
            fp16=False,
            report_to="none",
            seed=SEED,
            data_seed=SEED,
            max_steps=total,
            learning_rate=1e-4,
            lr_scheduler_type="constant",
            adam_beta1=0.9,
            adam_beta2=0.999,
            adam_epsilon=1e-8,
            weight_decay=0.0,
            max_grad_norm=1.0,
            per_device_train_batch_size=sz.micro,
            gradient_accumulation_steps=sz.batch // sz.micro,
            num_generations=sz.group,
            max_completion_length=sz.new_tokens,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            beta=beta,
            epsilon=0.2,
            loss_type="dapo",
            scale_rewards="group",
            num_iterations=1,
            shuffle_dataset=False,
            use_vllm=False,
            gradient_checkpointing=checkpointing,
            logging_steps=10_000,
            save_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
        )
        trainer = GRPOTrainer(model=tmp, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok)
        set_threads(torch.get_num_threads())
        gen = GenTimer(trainer.model.generate)
        trainer.model.generate = gen
        trainer.add_callback(StepClock())
        orig = trainer._generate_and_score_completions

        def scored(*a, **kw):
            out = orig(*a, **kw)
            lengths.append(float(out["completion_mask"].sum()) / out["completion_mask"].shape[0])
            return out

        trainer._generate_and_score_completions = scored
        start = clock()
        trainer.train()
    return summarize([start] + ends, gen, warmup, lengths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="smoke sizes: tiny shape, 4 prompts x 4 samples x 4 tokens")
    ap.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES))
    ap.add_argument("--betas", nargs="+", type=float, default=[0.0, 0.04])
    ap.add_argument(
        "--steps", type=int, default=None, help="measured optimiser steps per path (default 3; 1 with --tiny)"
    )
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-trl", action="store_true", help="skip TRL (not installed: pip install '.[bench]')")
    args = ap.parse_args()
    set_threads(args.threads)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "transformers", "trl", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    transformers_logging()
    sz = Sizes(args.tiny)
    shapes = args.shapes or (["tiny"] if args.tiny else ["tiny", "small"])
    steps = args.steps or (1 if args.tiny else 3)
    trl_version = None if args.no_trl else trl_version_or_none()
    print(f"# rl bench ({'tiny sizes' if args.tiny else 'full'})")
    print(machine_line({"trl": trl_version or "not installed"}))
    print(
        f"{sz.prompts} prompts x {sz.group} samples x <= {sz.new_tokens} new tokens per optimiser step, "
        f"micro-batch {sz.micro}; median over {steps} step(s) after {args.warmup} warm-up step(s)\n"
    )
    print(
        "| shape | beta | path | wall s/step | generation | rest | CPU s/step | generation | rest "
        "| completion tokens | wall: path / ours | CPU: path / ours |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        for beta in args.betas:
            rows: dict[str, dict[str, float]] = {}
            with contextlib.redirect_stdout(sys.stderr):  # trainers' own prints stay off the table
                rows["floor (hand-written)"] = run_floor(shape, beta, sz, steps, args.warmup)
                rows["ours (PolicyGradientModule)"] = run_ours(shape, beta, sz, steps, args.warmup)
                if trl_version:
                    rows["TRL GRPOTrainer, grad. checkpointing on (default)"] = run_trl(
                        shape, beta, sz, steps, args.warmup, True
                    )
                    rows["TRL GRPOTrainer, grad. checkpointing off"] = run_trl(
                        shape, beta, sz, steps, args.warmup, False
                    )
            o = rows["ours (PolicyGradientModule)"]
            for name, r in rows.items():
                print(
                    f"| {shape} | {beta:g} | {name} | {r['step']:.3f} | {r['gen']:.3f} | {r['rest']:.3f} | "
                    f"{r['cpu']:.3f} | {r['gen_cpu']:.3f} | {r['rest_cpu']:.3f} | {r['len']:.1f} | "
                    f"{r['step'] / o['step']:.2f}x | {r['cpu'] / o['cpu']:.2f}x |",
                    flush=True,
                )
    print(
        f"\npath s / ours s > 1: ours is that many times faster; for the floor, ours s / floor s = its inverse. "
        f"At the end: {machine_line().split(', ')[-1]}"
    )


def transformers_logging() -> None:
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001
        pass


if __name__ == "__main__":
    main()
