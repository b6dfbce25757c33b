"""Cost of rotation-preserving SFT (Step 11): an SFT step with ``algo.rotation_reg`` on vs plain SFT.

Same random-init model (``conf/model/tiny.yaml`` and the ``small`` shape), the same pre-built
batches of ``task=general_points_compact`` (drawn and tokenised before the clock starts), the
``algo=sft`` optimiser, float32, one torch thread, ``SFTModule`` under the Lightning trainer of
``sweeps-train`` (``sweeps.jobs.common.make_trainer``), no checkpoint evaluation. Paths, all in
this process, in rounds (plain, block, angle, plain, block, angle, ...) so that a change of
load on the shared cores hits every path alike:

- **plain**: ``algo.rotation_reg.lam=0`` (the default: nothing computed);
- **block**: ``lam=1``, ``variant=block``, k = 16, on every ``model.spectral_targets`` matrix
  (q/k/v/down of every layer);
- **angle**: ``lam=1``, ``variant=angle``, k = 16, bases re-estimated every ``refresh`` = 10
  steps (2 warm-started subspace-iteration steps), so 1 step in 10 carries the re-estimate.

The median step time is over the measured steps of all rounds (after ``--warmup`` steps per
round); the ratio is against plain in the same process. The references' one-off SVDs (at job
start) are timed separately.

    .venv/bin/python bench/rotation_reg.py              # tiny (batch 64) and small (batch 16), ~4 min on 2 cores
    .venv/bin/python bench/rotation_reg.py --tiny       # smoke: tiny shape, batch 8, 2 steps
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHAPES, clock, compose, machine_line, median, n_params, set_threads, spans  # noqa: E402

SEED = 0
PATHS = {
    "plain": [],
    "block": ["algo.rotation_reg.lam=1", "algo.rotation_reg.variant=block"],
    "angle": ["algo.rotation_reg.lam=1", "algo.rotation_reg.variant=angle", "algo.rotation_reg.refresh=10"],
}


def config(shape: str, batch: int, steps: int, path: str) -> Any:
    return compose(
        [
            "algo=sft",
            "task=general_points_compact",
            "trainer=cpu",
            "tracking=none",
            "algo.rotation_reg.k=16",
            f"trainer.batch_size={batch}",
            f"trainer.max_steps={steps}",
            *SHAPES[shape],
            *PATHS[path],
        ]
    )


def run(shape: str, batch: int, steps: int, warmup: int, path: str, data: list[dict[str, torch.Tensor]] | None):
    """(step wall times, step CPU times, setup seconds, the batches) of one path."""
    import lightning as L

    from sweeps.jobs.common import loader, make_trainer
    from sweeps.models.build import build
    from sweeps.modules.data import SFTStream
    from sweeps.modules.sft import SFTModule
    from sweeps.schema import build_task

    total = warmup + steps
    cfg = config(shape, batch, total, path)
    torch.manual_seed(SEED)
    model, tok = build(cfg.model)
    if data is None:
        it = iter(SFTStream(build_task(cfg.task), tok, SEED, batch, lambda: 0))
        data = [next(it) for _ in range(total)]
    t = time.perf_counter()
    module = SFTModule(model, cfg.algo, total, list(cfg.model.spectral_targets))  # the references' SVDs
    setup = time.perf_counter() - t
    ends: list[tuple[float, float]] = []

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            ends.append(clock())

    trainer = make_trainer(cfg, [StepClock()], gradient_clip_val=cfg.algo.max_grad_norm)
    start = clock()
    trainer.fit(module, train_dataloaders=loader(data))
    wall, cpu = spans([start] + ends)
    return wall[warmup:], cpu[warmup:], setup, data, model


def bench(shape: str, batch: int, steps: int, warmup: int, rounds: int) -> None:
    times: dict[str, tuple[list[float], list[float]]] = {p: ([], []) for p in PATHS}
    setup: dict[str, float] = {}
    data = None
    for _ in range(rounds):
        for path in PATHS:
            wall, cpu, s, data, model = run(shape, batch, steps, warmup, path, data)
            times[path][0].extend(wall)
            times[path][1].extend(cpu)
            setup[path] = s
    targets = len(
        [
            n
            for n, p in model.named_parameters()
            if p.ndim == 2 and any(x in n for x in ("q_proj", "k_proj", "v_proj", "down_proj"))
        ]
    )
    print(
        f"\n## {shape} ({n_params(model) / 1e6:.1f}M parameters, {targets} target matrices, k = 16), "
        f"batch {batch}, {rounds} rounds x {steps} measured steps per path\n"
    )
    print(
        "| path | step s (median wall) | step CPU s | vs plain (wall) | vs plain (CPU) | reference SVDs at start, s |"
    )
    print("|---|---|---|---|---|---|")
    base_w, base_c = median(times["plain"][0]), median(times["plain"][1])
    for path, (wall, cpu) in times.items():
        w, c = median(wall), median(cpu)
        print(f"| {path} | {w:.4f} | {c:.4f} | {w / base_w:.3f}x | {c / base_c:.3f}x | {setup[path]:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="smoke sizes: tiny shape, batch 8, 2 steps, 1 round")
    ap.add_argument("--shapes", nargs="*", choices=sorted(SHAPES), default=None)
    ap.add_argument("--steps", type=int, default=None, help="measured steps per path and round (default 20)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds over the paths (default 2)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    set_threads(args.threads)
    shapes = args.shapes or (["tiny"] if args.tiny else ["tiny", "small"])
    steps, rounds = args.steps or (2 if args.tiny else 20), args.rounds or (1 if args.tiny else 2)
    print(f"# rotation_reg bench ({'tiny sizes' if args.tiny else 'full'})")
    print(machine_line())
    for shape in shapes:
        batch = 8 if args.tiny else (64 if shape == "tiny" else 16)
        bench(shape, batch, steps, 1 if args.tiny else 3, rounds)


if __name__ == "__main__":
    main()
