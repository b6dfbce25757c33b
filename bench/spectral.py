"""Benchmark: the streaming spectral pass vs the naive path, and what a 7B model would cost.

    .venv/bin/python bench/spectral.py            # K=8 checkpoints of 2x512x512 + 2x512x1536, k=64 (~5 min)
    .venv/bin/python bench/spectral.py --tiny     # seconds; what tests/integration/test_bench_smoke.py runs
    .venv/bin/python bench/spectral.py --preset qwen0.5b-layer   # one Qwen2.5-0.5B layer's shapes (~12 min)

Presets (--preset; --tiny is --preset tiny): ``default`` (2x512x512 + 2x512x1536, K=8, k=64);
``qwen0.5b-layer``: the matrix shapes of one transformer layer of Qwen2.5-0.5B (hidden 896,
intermediate 4864, 14 heads, 2 KV heads of dim 64): q_proj 896x896, k_proj 128x896,
v_proj 128x896, down_proj 896x4864, K=8, k=64 (k/v: exactly 128/2, no clipping needed), same
spectrum, rotations, naive baseline, accuracy assertion, memory measurement and threads; its
step 3 times one decomposition of each of the layer's shapes and skips the 7B extrapolation
(which does not depend on the preset; run the default preset for it).

1. Writes K synthetic safetensors checkpoints (float32) of a model with a few matrices: W_0 has
   a power-law spectrum σ_i = (i+1)^-0.5 (flat like trained weights, no gap at k), and
   W_t = R_Lᵗ W_0 R_Rᵗᵀ (1 + 0.01 t) with R = expm(ε A), A skew with unit spectral norm,
   ε = 0.01: rotations of known size plus a known rescaling.
2. Compares the top-k principal angles (U and V sides: mean and max) of checkpoint pairs, for two
   workloads (--workload; both by default):
   - ``stage``: every checkpoint t >= 1 against the references ``sweeps-spectral`` compares with
     by default (spectral.references = [base, ood_peak, previous]): checkpoint 0, checkpoint 2
     (``OOD_PEAK``, an early checkpoint as the SFT OOD peak is) and t - 1; 3 (K - 1) pairs;
   - ``one``: every checkpoint t >= 1 against checkpoint 0 only; K - 1 pairs. With a single
     comparison per target this is the stream's worst case: it still decomposes every target once.
   computed by
   - naive: for every pair, load both whole checkpoints, full SVD of both matrices
     (scipy.linalg.svd, thin), scipy.linalg.subspace_angles on the top-k columns;
   - stream: the loop of sweeps.spectral.stage.analyse_run without its file writes:
     sweeps.spectral.stream.compare (metrics=[angles]) per reference, one matrix at a time from
     memory-mapped files, every checkpoint's top-k decomposition computed once and cached while a
     reference or the next checkpoint's "previous" needs it (keep_target=False with one fixed
     reference), with method full, eigh and randomized.
   Each method runs in a fresh subprocess per repeat; the time excludes interpreter start,
   imports and a warm-up: the same work on the first pair only (checkpoints 0 and 1, fresh
   caches, results dropped), for every path alike. Peak memory comes from two more runs per
   method: the resident-set high-water mark above the resident size just before the work
   (/proc/self/clear_refs resets the mark; MALLOC_MMAP_THRESHOLD_=65536 so that freed buffers
   leave the resident set), once after that warm-up and once after a warm-up on a small input
   only, whose peak also holds the one-time costs of the process (BLAS packing buffers, code
   pages of the kernels for the real sizes).
   Equal accuracy is asserted for full and eigh (angles within 1e-6 rad of the naive ones);
   randomized is reported with its error, not asserted.
3. Times one decomposition per matrix of the tiny model and of two larger matrices (4096x4096,
   k=768, and a wide 1024x5416, k=192, with the aspect ratio of the 7B down_proj), and
   extrapolates the cost of one checkpoint pair of Qwen2.5-7B (28 layers; q 3584x3584,
   k/v 512x3584, down 3584x18944; k = 768, k/v clipped to 256 by the k <= n/2 guard) from flop
   counts within each aspect class: full ∝ m n min(m, n); eigh = Gram ∝ min² max + eigensolver
   ∝ min³ (timed apart); randomized ∝ m n (k + p). Extrapolated, not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _spectral_costs import costs  # noqa: E402
from _spectral_work import (  # noqa: E402, F401  (OOD_PEAK, pairs: tests/unit/test_bench_spectral_pairs.py)
    METHODS,
    OOD_PEAK,
    make_checkpoints,
    pairs,
    rss_kb,
    warm_up,
    work_naive,
    work_stream,
)

from sweeps.runs import layout  # noqa: E402

SIZES = {
    "default": {
        "shapes": [(512, 512), (512, 512), (512, 1536), (512, 1536)],
        "K": 8,
        "k": 64,
        "repeats": 3,
        "tiny_model": [(128, 128), (128, 384)],
        "tiny_k": 16,
        "big": {"square": (4096, 4096, 768), "wide": (1024, 5416, 192)},
    },
    "tiny": {
        "shapes": [(64, 64), (64, 192)],
        "K": 3,
        "k": 8,
        "repeats": 1,
        "tiny_model": [(128, 128), (128, 384)],
        "tiny_k": 16,
        "big": {"square": (256, 256, 48), "wide": (128, 677, 24)},
    },
    # one transformer layer of Qwen2.5-0.5B: hidden 896, intermediate 4864, 14 heads, 2 KV heads of dim 64
    "qwen0.5b-layer": {
        "shapes": [(896, 896), (128, 896), (128, 896), (896, 4864)],
        "K": 8,
        "k": 64,
        "repeats": 3,
        "names": [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.v_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
        ],
        "tiny_model": [(896, 896), (128, 896), (896, 4864)],
        "tiny_k": 64,
        "tiny_reps": 3,
        "big": {},
    },
}
TOL = 1e-6


def worker(args: argparse.Namespace) -> None:
    from sweeps.threads import set_threads

    set_threads(args.threads, blas=True)
    paths = [p for _, p in layout.scan_steps(args.dir)]
    warm_up(args.worker, paths if args.warmup == "pair" else None, args.k)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
    except OSError:
        pass
    base = rss_kb("VmRSS")
    t0 = time.perf_counter()
    workload = args.workload[0]  # a worker runs one
    res = (
        work_naive(paths, args.k, workload)
        if args.worker == "naive"
        else work_stream(paths, args.k, args.worker, workload)
    )
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": (rss_kb("VmHWM") - base) / 1024,
                "results": {k: [float(x) for x in v] for k, v in res.items()},
            }
        )
    )


def spawn(which: str, d: Path, k: int, threads: int, workload: str, memory: bool = False, warmup: str = "pair") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        which,
        "--dir",
        str(d),
        "--k",
        str(k),
        "--threads",
        str(threads),
        "--warmup",
        warmup,
        "--workload",
        workload,
    ]
    # memory runs: a fixed mmap threshold makes glibc return every large buffer when it is freed,
    # so the high-water mark measures live data, not heap fragmentation (it slows every path a
    # little, so timing runs go without it)
    env = {**os.environ, **({"MALLOC_MMAP_THRESHOLD_": "65536"} if memory else {})}
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if res.returncode:
        raise SystemExit(f"error: worker {which} failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --- part 1: stream vs naive -----------------------------------------------------------------------
WORKLOADS = ("stage", "one")
TITLES = {
    "stage": "every checkpoint against base, ood_peak and previous (the stage's default references)",
    "one": "every checkpoint against one fixed reference (checkpoint 0)",
}


def compare_paths(size: dict, threads: int, workloads: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_spectral_") as tmp:
        paths = make_checkpoints(Path(tmp), size["shapes"], size["K"], names=size.get("names"))
        for workload in workloads:
            compare_workload(size, threads, workload, Path(tmp), len(paths))


def compare_workload(size: dict, threads: int, workload: str, d: Path, K: int) -> None:
    runs = {w: [spawn(w, d, size["k"], threads, workload) for _ in range(size["repeats"])] for w in ("naive", *METHODS)}
    peak = {w: spawn(w, d, size["k"], threads, workload, memory=True)["peak_mb"] for w in runs}
    peak_cold = {w: spawn(w, d, size["k"], threads, workload, memory=True, warmup="small")["peak_mb"] for w in runs}
    naive_t = statistics.median(r["seconds"] for r in runs["naive"])
    ref = runs["naive"][0]["results"]
    pair_mb = 2 * sum(m * n for m, n in size["shapes"]) * 4 / 2**20
    shapes = ", ".join(f"{m}x{n}" for m, n in size["shapes"])
    n_pairs = len(pairs(K, workload))
    print(
        f"\n## streaming pass vs naive, workload {workload}: {TITLES[workload]}; K={K} checkpoints, "
        f"{n_pairs} checkpoint pairs (naive: {2 * n_pairs} SVDs per matrix; stream: one decomposition per "
        f"checkpoint, {K}), matrices {shapes}, k={size['k']}, median of {size['repeats']} run(s)\n"
    )
    print(
        "| path | median s | speed-up vs naive | peak MB above baseline | same, with one-time library buffers "
        "| max abs angle diff vs naive (rad) |"
    )
    print("|---|---|---|---|---|---|")
    for w, rs in runs.items():
        t = statistics.median(r["seconds"] for r in rs)
        err = max(abs(a - b) for key, v in rs[0]["results"].items() for a, b in zip(v, ref[key]))
        label = "naive: full SVD of every pair + scipy subspace_angles" if w == "naive" else f"stream, method={w}"
        print(f"| {label} | {t:.3f} | {naive_t / t:.1f}x | {peak[w]:.1f} | {peak_cold[w]:.1f} | {err:.1e} |")
        assert set(rs[0]["results"]) == set(ref), f"stream method={w} computed other pairs than naive"
        if w in ("full", "eigh"):
            assert err < TOL, f"stream method={w} disagrees with the naive angles by {err:.2e} rad"
    trip_mb = sum((m + n + 1) * min(size["k"], m // 2, n // 2) for m, n in size["shapes"]) * 8 / 2**20
    held = {"stage": "base, ood_peak and previous", "one": "the reference"}[workload]
    print(
        f"\ntwo checkpoints' target matrices: {pair_mb:.1f} MB as float32 (on disk), {2 * pair_mb:.1f} MB as float64; "
        f"one checkpoint's float64 top-k triplets (U, S, V): {trip_mb:.1f} MB, of which the stream keeps "
        f"those of {held} cached besides the current target's"
    )


def machine(threads: int) -> str:
    import scipy
    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, scipy {scipy.__version__}, "
        f"threads {threads}, GPU {gpu}, python {platform.python_version()}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tiny", action="store_true", help="small sizes (seconds), for the smoke test; same as --preset tiny"
    )
    p.add_argument(
        "--preset",
        choices=tuple(SIZES),
        default="default",
        help="sizes: default (2x512x512 + 2x512x1536), qwen0.5b-layer (one Qwen2.5-0.5B layer's "
        "q/k/v/down shapes) or tiny",
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads for every method (default 1)")
    p.add_argument("--worker", choices=("naive", *METHODS), help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--warmup", choices=("pair", "small"), default="pair", help=argparse.SUPPRESS)
    p.add_argument(
        "--workload",
        choices=WORKLOADS,
        nargs="+",
        default=list(WORKLOADS),
        help="which comparisons: stage (every checkpoint against base, ood_peak and previous, "
        "the spectral stage's default references) and/or one (one fixed reference)",
    )
    args = p.parse_args()
    if args.worker:
        return worker(args)
    preset = "tiny" if args.tiny else args.preset
    size = SIZES[preset]
    from sweeps.threads import set_threads

    set_threads(args.threads, blas=True)
    print(f"# spectral bench ({preset} sizes)\n\n{machine(args.threads)}")
    compare_paths(size, args.threads, args.workload)
    costs(size, args.threads)


if __name__ == "__main__":
    main()
