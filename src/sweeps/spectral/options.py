"""How pairs of checkpoints are decomposed and compared: the options every spectral module reads."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .metrics import check_k


@dataclass(frozen=True)
class Options:
    """The ``spectral`` config node, minus the stage keys. ``method`` names a file of
    conf/spectral_method/, each entry of ``metrics`` a file of conf/spectral_metric/."""

    k: int = 16
    method: str = "eigh"
    clip_k: bool = False
    oversample: int = 10
    n_iter: int = 4
    seed: int = 0
    update_top: int = 4
    metrics: tuple[str, ...] = (
        "sv_drift",
        "angles",
        "best_match",
        "update_spectrum",
        "update_energy",
        "residual_outside",
    )
    device: str = "cpu"


def resolve_device(spec: str) -> str:
    """``auto`` -> cuda when available, else cpu; anything else is passed through."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def effective_k(shape: tuple[int, ...], opts: Options) -> int:
    """k for a matrix of ``shape``: guarded by check_k on both sides, or clipped to min(m, n)//2.

    Two k-subspaces of R^n share 2k - n dimensions, so k <= n/2 on each side (for U n = rows,
    for V n = columns); ``clip_k`` lowers k per matrix instead of failing.
    """
    m, n = shape
    if opts.clip_k:
        return max(1, min(opts.k, m // 2, n // 2))
    check_k(opts.k, m)  # U lives in R^m
    check_k(opts.k, n)  # V lives in R^n
    return opts.k
