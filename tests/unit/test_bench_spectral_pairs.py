"""The spectral benchmark compares the same checkpoint pairs as the spectral stage's references."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "spectral.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_spectral", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # module level imports only the standard library
    return mod


def test_stage_workload_pairs_every_checkpoint_with_base_ood_peak_and_previous():
    bench = _bench()
    assert bench.OOD_PEAK == 2
    assert bench.pairs(4, "stage") == [
        (1, "base", 0),
        (1, "ood_peak", 2),
        (1, "previous", 0),
        (2, "base", 0),
        (2, "ood_peak", 2),
        (2, "previous", 1),
        (3, "base", 0),
        (3, "ood_peak", 2),
        (3, "previous", 2),
    ]
    assert bench.pairs(2, "stage") == [(1, "base", 0), (1, "previous", 0)]  # no checkpoint 2: no ood_peak
    assert bench.pairs(4, "one") == [(1, "base", 0), (2, "base", 0), (3, "base", 0)]


def test_a_target_stays_cached_when_another_reference_or_the_next_previous_needs_it():
    # the rule the stage and the benchmark's stage loop share (sweeps.spectral.stage.keeps_target)
    from sweeps.spectral.stage import keeps_target

    base, peak = Path("ckpt/step=000000"), Path("ckpt/step=000020")
    assert keeps_target({"base": base}) is False  # one fixed reference: drop the target after use
    assert keeps_target({"base": base, "ood_peak": peak}) is True  # two references read it
    assert keeps_target({"base": base, "ood_peak": None}) is False  # an unresolved one does not count
    assert keeps_target({"previous": None}) is True  # the next checkpoint's "previous" reads it
