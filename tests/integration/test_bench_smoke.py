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
    # K = 3: the stage workload compares t = 1, 2 with base, ood_peak (checkpoint 2) and previous
    assert "workload stage: " in out and "6 checkpoint pairs (naive: 12 SVDs per matrix; stream: one " in out
    assert "workload one: " in out and "2 checkpoint pairs (naive: 4 SVDs per matrix; stream: one " in out
    assert out.count("| naive: full SVD of every pair + scipy subspace_angles |") == 2
    for method in ("full", "eigh", "randomized"):
        assert out.count(f"| stream, method={method} |") == 2
    assert "## Qwen2.5-7B, one checkpoint pair, extrapolated" in out and "Extrapolated, not measured." in out


def _run(script: str, *args: str, timeout: int = 900) -> str:
    res = subprocess.run(
        [sys.executable, str(BENCH.parent / script), *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _check_trl_rows(out: str, rows: list[str]) -> None:
    """TRL's rows must be in the table with measured times whenever TRL is installed (``make test``
    installs it with the bench extra), so a broken TRL path fails here; without TRL the test is
    skipped, with the reason shown, after the rest of the table has been checked."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        trl = version("trl")
    except PackageNotFoundError:
        assert "trl not installed" in out
        pytest.skip("TRL is not installed (pip install '.[bench]'): its rows were not checked")
    if f"trl {trl}" not in out:  # the bench found no TRL: show why it does not import
        try:
            import trl as _  # noqa: F401
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"TRL {trl} is installed but does not import ({type(err).__name__}: {err})")
        pytest.fail(f"TRL {trl} is installed and imports, but the bench did not report it:\n{out[:600]}")
    for row in rows:
        lines = [line for line in out.splitlines() if f"| {row} |" in line]
        assert len(lines) == 1, f"no TRL row {row!r} in the table:\n{out}"
        wall = float(lines[0].split(f"| {row} |")[1].split("|")[0])
        assert wall > 0, lines[0]


def test_bench_generation_tiny_prints_the_table():
    out = _run("generation.py", "--tiny", "--repeats", "1")
    assert out.startswith("# generation bench (tiny sizes)") and "machine: " in out and "torch " in out
    for path in ("generate, batch 1", "generate, batched", "ours (sweeps hf)"):
        assert f"| grouped | {path} |" in out
    assert "| distinct | ours (sweeps hf) |" in out


def test_bench_rl_tiny_prints_the_table():
    out = _run("rl.py", "--tiny")
    assert out.startswith("# rl bench (tiny sizes)") and "machine: " in out and "trl " in out
    for beta in ("0", "0.04"):
        assert f"| tiny | {beta} | floor (hand-written) |" in out
        assert f"| tiny | {beta} | ours (PolicyGradientModule) |" in out
    _check_trl_rows(
        out,
        [
            f"tiny | {beta} | TRL GRPOTrainer, grad. checkpointing {how}"
            for beta in ("0", "0.04")
            for how in ("on (default)", "off")
        ],
    )


def test_bench_sft_tiny_prints_the_table():
    out = _run("sft.py", "--tiny")
    assert out.startswith("# sft bench (tiny sizes)") and "matmul peak" in out
    assert "| ours (SFTModule) |" in out
    _check_trl_rows(out, [f"TRL SFTTrainer, grad. checkpointing {how}" for how in ("on (default)", "off")])


def test_bench_study_tiny_times_a_run_and_a_skipping_rerun():
    out = _run("study.py", "--tiny", timeout=1800)
    assert out.startswith("# study bench (tiny)") and "experiment=tiny_smoke" in out
    assert "| end to end |" in out and "| immediate re-run (all skips) |" in out
    assert "re-run left every metrics.jsonl untouched: True" in out


def test_bench_scaling_tiny_prints_one_row_per_layout():
    out = _run("scaling.py", "--tiny")
    assert "machine: " in out and "global batch 8 sequences" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "x" in line.split("|")[1]]
    assert [r.split("|")[1].strip() for r in rows] == ["baseline 1 x 1", "1 x 2 threads", "2 x 1 ddp", "2 x 1 fsdp"]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "1", "2", "2"]
    assert rows[0].rstrip().endswith("| 1.00x | 1.00x |")  # the baseline against itself
