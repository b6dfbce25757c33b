"""Helpers the Step-7 benchmarks share: machine facts, the two model shapes, config composition,
medians, the measured fp32 matmul peak.

Every script runs its paths in one process, back to back, on the same inputs, with one torch
thread (``--threads`` to change), and prints markdown tables of medians and ratios.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sweeps.threads import set_threads  # noqa: F401  (the benchmarks' thread setup is the jobs')

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# Overrides of conf/model/tiny.yaml (random init, the project's word-level tokenizer).
SHAPES: dict[str, list[str]] = {
    "tiny": [],  # 4 layers, hidden 128, MLP 384
    "small": [
        "model.arch.hidden_size=512",
        "model.arch.intermediate_size=1536",
        "model.arch.num_hidden_layers=8",
        "model.arch.num_attention_heads=8",
        "model.arch.num_key_value_heads=8",
    ],
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average n/a"


def trl_version_or_none() -> str | None:
    """TRL's version, or None (with a note on stderr) when the bench extra is not installed."""
    try:
        import trl
    except ImportError:
        print("TRL is not installed (pip install '.[bench]'): its rows are skipped", file=sys.stderr)
        return None
    return trl.__version__


def machine_line(extra: dict[str, str] | None = None) -> str:
    import transformers

    parts = [
        f"{os.cpu_count()} cores ({cpu_name()})",
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
    ]
    parts += [f"{k} {v}" for k, v in (extra or {}).items()]
    parts += [
        f"torch threads {torch.get_num_threads()}",
        "no GPU" if not torch.cuda.is_available() else "GPU present",
        load(),
    ]
    return "machine: " + ", ".join(parts)


def compose(overrides: list[str], config_name: str = "train") -> Any:
    """Compose a config from conf/ as the Hydra entry points do (same as tests/conftest.py)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import sweeps.schema  # noqa: F401  (registers the schemas)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """Measured fp32 matmul throughput (FLOP/s) at the current thread count: an n x n x n
    ``torch.mm`` (2 n^3 FLOP) timed ``repeats`` times after a warm-up; the median over the
    repeats of FLOPs / this process's CPU seconds (per thread), so that other jobs on the cores
    do not lower the peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    for _ in range(2):
        torch.mm(a, b, out=c)
    rates = []
    for _ in range(repeats):
        t = time.process_time()
        torch.mm(a, b, out=c)
        rates.append(2 * n**3 / ((time.process_time() - t) / torch.get_num_threads()))
    return median(rates)


def clock() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds). With one torch thread the CPU time is the
    wall time of a quiet machine and moves much less than wall time when other jobs share the
    cores, so the tables report both."""
    return time.perf_counter(), time.process_time()


def spans(marks: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Wall and CPU durations between consecutive ``clock()`` marks."""
    return ([b[0] - a[0] for a, b in zip(marks, marks[1:])], [b[1] - a[1] for a, b in zip(marks, marks[1:])])
