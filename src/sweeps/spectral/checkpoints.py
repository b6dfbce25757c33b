"""Reading checkpoints: memory-mapped safetensors files, target selection, shape checks.

Tensors are read one at a time from memory-mapped safetensors files (``safe_open``), never two
whole checkpoints. LoRA runs need nothing special: their checkpoints are saved with the
adapters merged (``sweeps.models.checkpoint``), so the analysis sees the merged weights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch


class Checkpoint:
    """Memory-mapped view of a checkpoint's safetensors files (one file or HF shards)."""

    def __init__(self, path: str | Path):
        from safetensors import safe_open

        self.path = Path(path)
        files = sorted(self.path.glob("*.safetensors")) if self.path.is_dir() else [self.path]
        if not files or not files[0].is_file():
            raise FileNotFoundError(f"checkpoint {self.path} has no *.safetensors weights")
        self.files: dict[str, Path] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as fh:
                    for name in fh.keys():
                        self.files[name] = f
                        self.shapes[name] = tuple(fh.get_slice(name).get_shape())
            except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
                raise ValueError(f"cannot read safetensors file {f}: {err}") from None

    def names(self) -> list[str]:
        return list(self.files)

    def load(self, name: str, device: str = "cpu", dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
        """One tensor on ``device`` as ``dtype`` (None: as stored); the rest of the file stays on disk."""
        from safetensors import safe_open

        with safe_open(str(self.files[name]), framework="pt") as fh:
            W = fh.get_tensor(name)
        return W.to(device=device, dtype=dtype or W.dtype)

    def where(self, name: str) -> Path:
        return self.files[name]


def select_targets(names: Iterable[str], regexes: Iterable[str], where: str | Path = "the checkpoint") -> list[str]:
    """2-D parameter names matching any regex (``re.search``), in file order.

    A regex that matches nothing is a one-line ValueError naming it and a few parameter names.
    """
    names = list(names)
    chosen: list[str] = []
    for rx in regexes:
        hits = [n for n in names if re.search(rx, n)]
        if not hits:
            raise ValueError(
                f"spectral target regex {rx!r} matches no parameter of {where} (it has e.g. {', '.join(names[:4])})"
            )
        chosen += [h for h in hits if h not in chosen]
    return [n for n in names if n in chosen]


def layer_and_matrix(name: str) -> tuple[int, str]:
    """("model.layers.3.self_attn.q_proj.weight") -> (3, "q_proj"); layer -1 when there is none."""
    m = re.search(r"layers?\.(\d+)\.", name)
    parts = name.split(".")
    kind = parts[-2] if parts[-1] in ("weight", "bias") and len(parts) > 1 else parts[-1]
    return (int(m.group(1)) if m else -1), kind


def check_same_shapes(ref: Checkpoint, tgt: Checkpoint, names: Iterable[str]) -> None:
    """One-line ValueError naming both files and the tensor when the checkpoints disagree."""
    for name in names:
        if name not in tgt.shapes:
            raise ValueError(f"tensor {name} is in {ref.where(name)} but not in checkpoint {tgt.path}")
        if ref.shapes[name] != tgt.shapes[name]:
            raise ValueError(
                f"checkpoints differ in shape: {name} is {list(ref.shapes[name])} in "
                f"{ref.where(name)} but {list(tgt.shapes[name])} in {tgt.where(name)}"
            )
