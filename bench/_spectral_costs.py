"""bench/spectral.py part 3: one top-k decomposition per matrix, timed, and the Qwen2.5-7B cost
extrapolated from those timings by flop counts (see bench/spectral.py). Module level: standard library only."""

from __future__ import annotations

import statistics
import time

from _spectral_work import METHODS

QWEN7B = [("q", 3584, 3584, 1), ("k", 512, 3584, 1), ("v", 512, 3584, 1), ("down", 3584, 18944, 1)]
LAYERS_7B, K_7B = 28, 768


# --- part 2: per-matrix cost and the 7B extrapolation ----------------------------------------------
def timed(fn, repeats: int = 1) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def per_matrix(m: int, n: int, k: int, repeats: int) -> dict[str, float]:
    import torch

    from sweeps.spectral.decompositions import decompose
    from sweeps.spectral.lapack import _gram, _top_eigh
    from sweeps.spectral.options import Options

    W = torch.randn(m, n, generator=torch.Generator().manual_seed(0))  # [m, n] float32, as checkpoints store it
    opts = Options(k=k)
    out = {meth: timed(lambda meth=meth: decompose(W, k, opts, meth), repeats) for meth in METHODS}
    G = _gram(W)  # [r, r] float64 (what the eigh method builds)
    out["gram"] = timed(lambda: _gram(W), repeats)
    out["eig"] = timed(lambda: _top_eigh(G, k), repeats)  # not in place: G is reused
    return out


def scale(shape: tuple[int, int, int], measured: tuple[int, int, int], t: dict[str, float], p: int = 10) -> dict:
    """Seconds for one decomposition of ``shape`` from the timings ``t`` of ``measured`` (same aspect class)."""
    (m, n, k), (bm, bn, bk) = shape, measured
    r, M, br, bM = min(m, n), max(m, n), min(bm, bn), max(bm, bn)
    return {
        "full": t["full"] * (m * n * r) / (bm * bn * br),
        "eigh": t["gram"] * (r * r * M) / (br * br * bM) + t["eig"] * (r / br) ** 3,
        "randomized": t["randomized"] * (m * n * (k + p)) / (bm * bn * (bk + p)),
    }


def extrapolate(big: dict[str, tuple[int, int, int]], timings: dict) -> None:
    print(
        f"\n## Qwen2.5-7B, one checkpoint pair, extrapolated from the {' and '.join(f'{m}x{n} (k={k})' for m, n, k in big.values())} "
        "timings above (square shapes from the square one, wide ones from the wide one)\n"
    )
    print("| matrix | shape | k | per layer: full SVD s | eigh s | randomized s |")
    print("|---|---|---|---|---|---|")
    tot = dict.fromkeys(METHODS, 0.0)
    for name, m, n, count in QWEN7B:
        k = min(K_7B, min(m, n) // 2)
        measured = big["square" if m == n else "wide"]
        est = scale((m, n, k), measured, timings[measured])
        for meth in METHODS:
            tot[meth] += est[meth] * count * LAYERS_7B
        print(f"| {name} | {m}x{n} | {k} | {est['full']:.2f} | {est['eigh']:.2f} | {est['randomized']:.2f} |")
    print(
        f"\nper checkpoint pair ({LAYERS_7B} layers, reference cached): naive (2 full SVDs per matrix) "
        f"{2 * tot['full'] / 60:.1f} min; stream full {tot['full'] / 60:.1f} min; stream eigh "
        f"{tot['eigh'] / 60:.1f} min; stream randomized {tot['randomized'] / 60:.1f} min "
        f"(+ the same again for a decomposition of ΔW when update_spectrum is on). Extrapolated, not measured."
    )
    per_layer = sum(m * n for _, m, n, _ in QWEN7B)
    print(
        f"two checkpoints' target matrices: {2 * per_layer * LAYERS_7B * 2 / 2**30:.1f} GiB in bf16; "
        f"stream eigh with metrics [angles] holds one matrix as stored plus its float64 Gram matrix at a time "
        f"(largest: down, {3584 * 18944 * 2 / 2**30:.2f} GiB bf16 + {3584**2 * 8 / 2**30:.2f} GiB) "
        f"plus {sum((m + n + 1) * min(K_7B, min(m, n) // 2) for _, m, n, _ in QWEN7B) * 8 * LAYERS_7B / 2**30:.1f} "
        f"GiB of float64 top-k triplets per cached checkpoint."
    )


def costs(size: dict, threads: int) -> None:
    rows = [(m, n, size["tiny_k"], size.get("tiny_reps", 5)) for m, n in size["tiny_model"]] + [
        (*b, 1) for b in size["big"].values()
    ]
    print("\n## one top-k decomposition per matrix (s; eigh = Gram product + top-k eigensolver)\n")
    print("| shape | k | full SVD | eigh | randomized (n_iter=4, p=10) | Gram | eigensolver |")
    print("|---|---|---|---|---|---|---|")
    timings = {}
    for m, n, k, reps in rows:
        t = timings[(m, n, k)] = per_matrix(m, n, k, reps)
        print(
            f"| {m}x{n} | {k} | {t['full']:.4f} | {t['eigh']:.4f} | {t['randomized']:.4f} | {t['gram']:.4f} | {t['eig']:.4f} |"
        )
    if size["big"]:
        extrapolate(size["big"], timings)
