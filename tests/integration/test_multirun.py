"""A Hydra multirun over seeds through the submitit local launcher (slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_seed_grid_on_submitit_local(tmp_path):
    exe = Path(sys.executable).parent / "sweeps-train"
    res = subprocess.run(
        [
            str(exe),
            "-m",
            "hydra/launcher=local",
            "experiment=tiny_sft",
            "trainer=smoke",
            "eval.size=8",
            "seed=0,1",
            f"paths.output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    runs = [tmp_path / "tiny_sft/sft/tiny/general_points_compact/base" / f"seed={s}" for s in (0, 1)]
    assert all((r / "DONE").is_file() for r in runs)
    losses = [[json.loads(x).get("train/loss") for x in (r / "metrics.jsonl").read_text().splitlines()] for r in runs]
    assert losses[0] != losses[1]  # seeds see different data
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("tiny_sft")
    found = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["sweeps.seed"] for r in found) == ["0", "1"]  # no run lost to the race
