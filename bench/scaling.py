"""SFT throughput of one job on 1 vs 2 processes (Step 8): tokens/s per process and in total.

The job is ``sweeps-train``'s SFT loop (``SFTModule`` on ``SFTStream`` under
``sweeps.jobs.common.make_trainer``, checkpoint evaluation left out) on the tiny model and
``task=general_points_compact``, float32, with the same **global** batch (64 sequences) in every
row, so the rows do the same work per optimiser step:

- **baseline 1 x 1**: one process, one torch thread (what ``sweeps-train`` does by default);
- **1 x 2**: one process, two threads (the other way to use two cores);
- **2 x 1 ddp** / **2 x 1 fsdp**: two processes of one thread each (``trainer.devices=2``,
  gloo), started the way a job starts its ranks (``sweeps.parallel.launch.spawn``), each with
  32 sequences per step.

Tokens are real (non-padding) tokens; per-process tokens/s = the tokens a process handles per
step / the median step time after ``--warmup`` steps; total = the sum over processes. The
ratios are against the baseline, measured in the same run. On a CPU the two processes share
the machine's cores and memory bandwidth: this measures the cost of the collectives and the
per-rank bookkeeping, not a GPU cluster's scaling.

    .venv/bin/python bench/scaling.py            # ~2 min on 2 cores
    .venv/bin/python bench/scaling.py --tiny     # smoke: 3 steps, batch 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import compose, machine_line, median  # noqa: E402


def rank_job(cfg: Any) -> list[dict[str, Any]] | None:
    """One rank (or the only process): train ``trainer.max_steps`` steps, time each; every
    rank's timings on rank 0 (None on the others)."""
    from sweeps.parallel import launch, world

    with launch.ranks(cfg):
        return world.gather(train(cfg))


def train(cfg: Any) -> dict[str, Any]:
    import lightning as L
    import torch

    from sweeps.jobs import common
    from sweeps.models.build import build
    from sweeps.modules.data import SFTStream
    from sweeps.modules.sft import SFTModule
    from sweeps.parallel import world
    from sweeps.schema import build_task
    from sweeps.threads import set_threads

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.steps: list[tuple[float, float]] = []  # (seconds, real tokens) per step

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.steps.append((time.perf_counter() - self.t, float(batch["attention_mask"].sum())))

    set_threads(cfg.trainer.threads)
    common.seed_everything(0)
    task = build_task(cfg.task)
    model, tokenizer = build(cfg.model)
    timer = Timer()
    trainer = common.make_trainer(cfg, [timer], gradient_clip_val=cfg.algo.max_grad_norm)
    stream = SFTStream(task, tokenizer, 0, cfg.trainer.batch_size, start_batch=lambda: trainer.global_step)
    trainer.fit(SFTModule(model, cfg.algo, cfg.trainer.max_steps), train_dataloaders=common.loader(stream))
    return {"rank": world.world().rank, "steps": timer.steps, "threads": torch.get_num_threads()}


def measure(cfg: Any, warmup: int) -> dict[str, float]:
    from sweeps.parallel import launch

    ranks = launch.spawn("scaling.rank_job", cfg) if launch.needs_spawn(cfg) else rank_job(cfg)
    per_process = []
    for r in ranks:
        steps = r["steps"][warmup:]
        per_process.append(median([tok / s for s, tok in steps]))
    step = max(median([s for s, _ in r["steps"][warmup:]]) for r in ranks)
    return {
        "per_process": sum(per_process) / len(per_process),
        "total": sum(per_process),
        "step_s": step,
        "processes": len(ranks),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="smoke run: 3 steps of 8 sequences")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    steps, warmup, batch = (3, 1, 8) if args.tiny else (args.steps + args.warmup, args.warmup, 64)
    base = [
        "algo=sft",
        "model=tiny",
        "task=general_points_compact",
        "trainer=cpu",
        "tracking=none",
        f"trainer.max_steps={steps}",
        f"trainer.batch_size={batch}",
        "trainer.save_every=[1]",
    ]
    rows = [
        ("baseline 1 x 1", []),
        ("1 x 2 threads", ["trainer.threads=2"]),
        ("2 x 1 ddp", ["trainer.devices=2", "trainer/strategy=ddp"]),
        ("2 x 1 fsdp", ["trainer.devices=2", "trainer/strategy=fsdp"]),
    ]
    results = {name: measure(compose([*base, *extra]), warmup) for name, extra in rows}
    ref = results["baseline 1 x 1"]
    print(machine_line())
    print(f"SFT, tiny model, global batch {batch} sequences, {steps - warmup} timed steps after {warmup} warm-up\n")
    print(
        "| run | processes | step s (slowest rank) | tokens/s per process | tokens/s total | per process vs baseline | total vs baseline |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['processes']} | {r['step_s']:.3f} | {r['per_process']:.0f} | {r['total']:.0f} | "
            f"{r['per_process'] / ref['per_process']:.2f}x | {r['total'] / ref['total']:.2f}x |"
        )


if __name__ == "__main__":
    main()
