"""SFT throughput: our SFT module vs TRL ``SFTTrainer``, and model FLOP utilisation (Step 7, item 3).

Same random-init model (the project's builder: ``conf/model/tiny.yaml`` and the ``small``
shape), the same data (the first ``steps x batch`` examples of the SFT stream of
``task=general_points_compact``: chat-templated prompt + reference answer, loss on the answer
tokens only), the same optimiser (AdamW, the ``algo=sft`` settings: lr 1e-3, betas 0.9/0.98,
eps 1e-7, constant with 10 warm-up steps, gradient-norm clip 1.0), batch 64 sequences, one
optimiser step per batch, float32, one torch thread.

- **ours**: ``SFTModule`` on ``SFTStream`` with the Lightning trainer of ``sweeps-train``
  (``sweeps.jobs.common.make_trainer``), checkpoint evaluation left out. The stream draws and
  tokenises every example inside the training loop (GeneralPoints' sampler checks that each
  hand is solvable); TRL gets its dataset pre-built, so a second row feeds our module the same
  batches pre-built, to separate the module and trainer from the data stream.
- **TRL**: ``trl.SFTTrainer`` (version printed) on the identical token ids and labels given as a
  pre-tokenised dataset (``input_ids`` + ``labels``), ``packing=False``, ``padding_free=False``,
  ``shuffle_dataset=False``, ``use_cpu``, no bf16/fp16, ``report_to="none"``; with its default
  ``gradient_checkpointing=True`` and with it off.

Tokens/s counts real (non-padding) tokens, the same for both paths; the median is over
``--steps`` optimiser steps after ``--warmup`` warm-up steps. MFU = model FLOP/s / measured peak:
model FLOPs per step = 6 N T + 12 n_layer d S T (PaLM's count: N = parameters in matmuls, the
tied embedding counted once as the LM head; T = real tokens; S = padded sequence length; the
attention term is small here), the peak = the median fp32 ``torch.mm`` throughput at 1024^3 on
this machine at the same thread count, measured in the script.

    .venv/bin/python bench/sft.py              # tiny and small (~5 min on 2 cores)
    .venv/bin/python bench/sft.py --tiny       # smoke: tiny shape, batch 8, 1 step
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    SHAPES,
    clock,
    compose,
    machine_line,
    matmul_peak,
    median,
    n_params,
    set_threads,
    spans,  # noqa: E402
    trl_version_or_none,
)

SEED = 0


def config(shape: str, batch: int, steps: int) -> Any:
    return compose(
        [
            "algo=sft",
            "task=general_points_compact",
            "trainer=cpu",
            "tracking=none",
            f"trainer.batch_size={batch}",
            f"trainer.max_steps={steps}",
            *SHAPES[shape],
        ]
    )


def batches(cfg: Any, task: Any, tok: Any, n: int) -> list[dict[str, torch.Tensor]]:
    from sweeps.modules.data import SFTStream

    it = iter(SFTStream(task, tok, SEED, cfg.trainer.batch_size, lambda: 0))
    return [next(it) for _ in range(n)]


def model_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    c = model.config
    T = float(batch["attention_mask"].sum())
    S = batch["input_ids"].shape[1]
    return 6 * n_params(model) * T + 12 * c.num_hidden_layers * c.hidden_size * S * T


def summarize(
    marks: list[tuple[float, float]],
    warmup: int,
    data: list[dict[str, torch.Tensor]],
    model: torch.nn.Module,
    peak: float,
) -> dict[str, float]:
    wall, cpu = (x[warmup:] for x in spans(marks))
    measured = data[warmup : warmup + len(wall)]
    tokens = [float(b["attention_mask"].sum()) for b in measured]
    flops = [model_flops(model, b) for b in measured]
    return {
        "step": median(wall),
        "cpu": median(cpu),
        "tps": median([t / s for t, s in zip(tokens, wall)]),
        "tps_cpu": median([t / s for t, s in zip(tokens, cpu)]),
        "mfu": median([f / s for f, s in zip(flops, wall)]) / peak,
        "mfu_cpu": median([f / s for f, s in zip(flops, cpu)]) / peak,
        "n": len(wall),
    }


def run_ours(shape: str, batch: int, steps: int, warmup: int, peak: float, prebuilt: bool = False) -> dict[str, float]:
    import lightning as L

    from sweeps.jobs.common import loader, make_trainer
    from sweeps.models.build import build
    from sweeps.modules.data import SFTStream
    from sweeps.modules.sft import SFTModule
    from sweeps.schema import build_task

    total = warmup + steps
    cfg = config(shape, batch, total)
    task = build_task(cfg.task)
    model, tok = build(cfg.model)
    data = batches(cfg, task, tok, total)
    module = SFTModule(model, cfg.algo, cfg.trainer.max_steps)
    ends: list[float] = []

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            ends.append(clock())

    trainer = make_trainer(cfg, [StepClock()], gradient_clip_val=cfg.algo.max_grad_norm)  # as jobs/sft.py
    stream = SFTStream(task, tok, SEED, cfg.trainer.batch_size, start_batch=lambda: trainer.global_step)
    if prebuilt:  # the same batches, drawn and tokenised before the clock starts
        stream = data
    start = clock()
    trainer.fit(module, train_dataloaders=loader(stream))
    return summarize([start] + ends, warmup, data, model, peak)


def run_trl(shape: str, batch: int, steps: int, warmup: int, peak: float, checkpointing: bool) -> dict[str, float]:
    import transformers
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from sweeps.models.build import build
    from sweeps.schema import build_task

    total = warmup + steps
    cfg = config(shape, batch, total)
    task = build_task(cfg.task)
    model, tok = build(cfg.model)
    data = batches(cfg, task, tok, total)
    rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
    for b in data:
        for ids, att, lab in zip(b["input_ids"], b["attention_mask"], b["labels"]):
            n = int(att.sum())
            rows["input_ids"].append(ids[:n].tolist())
            rows["labels"].append(lab[:n].tolist())
    ends: list[float] = []

    class StepClock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(clock())

    a = cfg.algo
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp,
            use_cpu=True,
            bf16=False,
            fp16=False,
            report_to="none",
            seed=SEED,
            data_seed=SEED,
            max_steps=total,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=1,
            learning_rate=a.optimizer.lr,
            adam_beta1=a.optimizer.betas[0],
            adam_beta2=a.optimizer.betas[1],
            adam_epsilon=a.optimizer.eps,
            weight_decay=a.optimizer.weight_decay,
            lr_scheduler_type=a.scheduler,
            warmup_steps=a.warmup_steps,
            max_grad_norm=a.max_grad_norm,
            gradient_checkpointing=checkpointing,
            packing=False,
            padding_free=False,
            shuffle_dataset=False,
            max_length=1024,
            logging_steps=10_000,
            save_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataset_num_proc=None,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tok)
        trainer.add_callback(StepClock())
        start = clock()
        trainer.train()
    return summarize([start] + ends, warmup, data, model, peak)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="smoke sizes: tiny shape, batch 8, 1 step")
    ap.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES))
    ap.add_argument("--batch", type=int, default=None, help="sequences per optimiser step (default 64; 8 with --tiny)")
    ap.add_argument("--steps", type=int, default=None, help="measured steps per path (default 5; 1 with --tiny)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-trl", action="store_true")
    args = ap.parse_args()
    set_threads(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "transformers", "trl", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    shapes = args.shapes or (["tiny"] if args.tiny else ["tiny", "small"])
    batch = args.batch or (8 if args.tiny else 64)
    steps = args.steps or (1 if args.tiny else 5)
    trl_version = None if args.no_trl else trl_version_or_none()
    peak = matmul_peak(256 if args.tiny else 1024)
    print(f"# sft bench ({'tiny sizes' if args.tiny else 'full'})")
    print(machine_line({"trl": trl_version or "not installed"}))
    print(f"measured fp32 matmul peak ({torch.get_num_threads()} thread(s)): {peak / 1e9:.1f} GFLOP/s")
    print(
        f"batch {batch} sequences, 1 optimiser step per batch; median over {steps} step(s) after {args.warmup} "
        f"warm-up step(s)\n"
    )
    print(
        "| shape | params | path | wall s/step | tokens/s | MFU | CPU s/step | tokens/CPU-s | MFU (CPU time) "
        "| ours / it (wall) | ours / it (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        rows: dict[str, dict[str, float]] = {}
        with contextlib.redirect_stdout(sys.stderr):
            rows["ours (SFTModule)"] = run_ours(shape, batch, steps, args.warmup, peak)
            rows["ours (SFTModule), batches pre-built like TRL's dataset"] = run_ours(
                shape, batch, steps, args.warmup, peak, prebuilt=True
            )
            if trl_version:
                rows["TRL SFTTrainer, grad. checkpointing on (default)"] = run_trl(
                    shape, batch, steps, args.warmup, peak, True
                )
                rows["TRL SFTTrainer, grad. checkpointing off"] = run_trl(shape, batch, steps, args.warmup, peak, False)
        from sweeps.models.build import build

        size = n_params(build(config(shape, batch, 1).model)[0])
        o = rows["ours (SFTModule)"]
        for name, r in rows.items():
            print(
                f"| {shape} | {size / 1e6:.2f}M | {name} | {r['step']:.3f} | {r['tps']:.0f} | {100 * r['mfu']:.0f}% | "
                f"{r['cpu']:.3f} | {r['tps_cpu']:.0f} | {100 * r['mfu_cpu']:.0f}% | {o['tps'] / r['tps']:.2f}x | "
                f"{o['tps_cpu'] / r['tps_cpu']:.2f}x |",
                flush=True,
            )
    print(f"\nat the end: {machine_line().split(', ')[-1]}")


if __name__ == "__main__":
    main()
