"""``sweeps-spectral`` over a tiny SFT run, through the real command line (slow)."""

from __future__ import annotations

import csv
import json
import time

import pytest

from tests.integration.test_sft_job import SMOKE, run_path, sweeps

pytestmark = pytest.mark.slow
SPECTRAL = ["model=tiny", "task=general_points_compact", "seed=0", "spectral.k=16"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    out = tmp_path_factory.mktemp("spectral")
    res = sweeps("sweeps-train", [*SMOKE, "seed=0", f"paths.output_dir={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    res = sweeps("sweeps-spectral", [*SPECTRAL, f"paths.output_dir={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_one_table_per_checkpoint_and_reference_and_a_summary(analysed):
    spec = run_path(analysed, 0) / "spectral"
    tables = sorted(str(p.relative_to(spec)) for p in spec.glob("*/step=*.csv"))
    # smoke checkpoints 3 and 6; base = step 3; "previous" has no table for the first checkpoint
    ood_peak = [f"ood_peak/step=00000{s}.csv" for s in (3, 6)]
    assert tables == ["base/step=000003.csv", "base/step=000006.csv", *ood_peak, "previous/step=000006.csv"]
    with open(spec / "base" / "step=000006.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 4  # q, k, v, down in each of 4 layers
    assert {r["matrix"] for r in rows} == {"q_proj", "k_proj", "v_proj", "down_proj"}
    assert all(0 < float(r["u_angle_mean"]) < float(r["u_chordal_random"]) for r in rows)
    with open(spec / "base" / "step=000003.csv") as fh:  # the reference against itself
        assert all(float(r["angle_mean"]) < 1e-12 for r in csv.DictReader(fh))
    with open(spec / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert {r["group"] for r in summary} == {
        "all",
        *(f"layer{i}" for i in range(4)),
        "q_proj",
        "k_proj",
        "v_proj",
        "down_proj",
    }


def test_spectral_metrics_are_in_the_runs_mlflow_run(analysed):
    from mlflow.tracking import MlflowClient

    from sweeps.spectral import CONVENTION

    state = json.loads((run_path(analysed, 0) / "mlflow.json").read_text())
    client = MlflowClient(f"sqlite:///{analysed}/mlflow.db")
    run = client.get_run(state["run_id"])
    hist = client.get_metric_history(state["run_id"], "spectral/base/angle_mean")
    assert sorted(m.step for m in hist) == [3, 6]
    assert [m.value for m in sorted(hist, key=lambda m: m.step)][0] < 1e-12
    per_layer = client.get_metric_history(state["run_id"], "spectral/previous/layer2/angle_mean")
    assert [m.step for m in per_layer] == [6] and per_layer[0].value > 0
    assert client.get_metric_history(state["run_id"], "spectral/base/layer0/q_proj/u_angle_mean")
    assert run.data.params["spectral.convention"] == CONVENTION == run.data.tags["sweeps.spectral.convention"]
    assert len(client.get_metric_history(state["run_id"], "train/loss")) == 6  # the training metrics stay


def test_second_invocation_is_a_fast_skip(analysed):
    spec = run_path(analysed, 0) / "spectral"
    before = {p: p.stat().st_mtime_ns for p in spec.glob("*/step=*.csv")}
    t = time.monotonic()
    res = sweeps("sweeps-spectral", [*SPECTRAL, f"paths.output_dir={analysed}"])
    elapsed = time.monotonic() - t
    assert res.returncode == 0, res.stderr[-2000:]
    assert "5 present" in res.stdout + res.stderr and "'decompositions': 0" in res.stdout + res.stderr
    assert {p: p.stat().st_mtime_ns for p in spec.glob("*/step=*.csv")} == before
    assert elapsed < 15, elapsed


def test_bad_input_is_one_line(analysed):
    res = sweeps(
        "sweeps-spectral",
        [*SPECTRAL, "spectral.k=100", "spectral.references=[base]", f"paths.output_dir={analysed}", "study=other"],
    )
    assert res.returncode != 0 and res.stderr.strip().splitlines()[-1].startswith("error: no run directories")
    res = sweeps(
        "sweeps-spectral",
        [
            "model=tiny",
            "task=general_points_compact",
            "seed=0",
            "spectral.k=128",
            f"paths.output_dir={analysed}",
            "study=default",
        ],
    )
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode != 0 and last.startswith("error: k=128 must be below n=128") and "\n" not in last
