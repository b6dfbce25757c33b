"""The benchmarks run end to end at tiny sizes and print their tables (slow)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench" / "spectral.py"


def test_bench_spectral_tiny_prints_the_tables():
    res = subprocess.run([sys.executable, str(BENCH), "--tiny"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert out.startswith("# spectral bench (tiny sizes)") and "machine: " in out and "torch " in out
    assert "| naive: full SVD of every pair + scipy subspace_angles |" in out
    for method in ("full", "eigh", "randomized"):
        assert f"| stream, method={method} |" in out
    assert "## Qwen2.5-7B, one checkpoint pair, extrapolated" in out and "Extrapolated, not measured." in out


def test_bench_generation_tiny_prints_the_table():
    script = BENCH.parent / "generation.py"
    res = subprocess.run([sys.executable, str(script), "--tiny", "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert out.startswith("# generation bench (tiny sizes)") and "machine: " in out
    for path in ("generate, batch 1", "generate, batched", "ours (sweeps hf)"):
        assert f"| tiny | {path} |" in out
