"""Parameter drift between checkpoints: ||theta_b - theta_a|| (L2 over every weight tensor).

Used to match an RL run to SFT by distance moved in weight space instead of by steps (Step 10,
hypothesis (c); docs/tiny_heal.md). Prints one line per pair:

    python bench/drift.py A B [C D ...]      # ||B - A||, ||D - C||, ...

Each argument is a checkpoint directory holding model.safetensors (a run's ckpt/step=N).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def drift(a: Path, b: Path) -> float:
    """L2 norm of the difference of two checkpoints' weights (same names and shapes required)."""
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    if wa.keys() != wb.keys():
        raise SystemExit(f"error: {a} and {b} hold different weights (not the same model)")
    total = sum(float(torch.sum((wb[k].double() - wa[k].double()) ** 2)) for k in wa)
    return total**0.5


def main(argv: list[str]) -> None:
    if len(argv) < 2 or len(argv) % 2:
        raise SystemExit(
            "usage: python bench/drift.py CKPT_A CKPT_B [CKPT_C CKPT_D ...] (pairs of checkpoint directories)"
        )
    for a, b in zip(argv[::2], argv[1::2]):
        print(f"{drift(Path(a), Path(b)):.4f}  {a} -> {b}")


if __name__ == "__main__":
    main(sys.argv[1:])
