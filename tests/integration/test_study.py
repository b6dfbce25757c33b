"""The study driver end to end on submitit-local (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).parent / "sweeps-study")
# Credentials as a user's shell holds them: none may end up in any file the study writes.
PLANTED = {
    "HF_TOKEN": "hf_plantedToken9f3c1",
    "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-pw-77",
    "WANDB_API_KEY": "planted0apikey0123456789",
    "AWS_SECRET_ACCESS_KEY": "planted/aws+secret/key42",
}


def study(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, "experiment=tiny_smoke", *args],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, **PLANTED},
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    res = study(f"paths.output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_no_planted_secret_in_any_file_the_study_wrote(finished):
    """Run directories, the MLflow store and artifacts, Hydra's and submitit's files."""
    files = [p for p in finished.rglob("*") if p.is_file()]
    assert len(files) > 100 and any(p.name == "mlflow.db" for p in files)
    assert any(p.name == "overrides.yaml" for p in files)
    for p in files:
        data = p.read_bytes()
        for name, value in PLANTED.items():
            assert value.encode() not in data, f"{name}'s value is in {p}"


def test_all_stages_and_jobs_finish(finished):
    root = finished / "tiny_smoke"
    sft = sorted(p.parent.name for p in root.glob("sft/tiny/general_points_compact/base/*/DONE"))
    rl = sorted(
        f"{p.parent.parent.name}/{p.parent.name}" for p in root.glob("grpo/tiny/general_points_compact/*/*/DONE")
    )
    assert sft == ["seed=0", "seed=1"]
    assert rl == [
        "sft-step=000003/seed=0",
        "sft-step=000003/seed=1",
        "sft-step=000006/seed=0",
        "sft-step=000006/seed=1",
    ]


def test_mlflow_has_one_parent_and_the_children(finished):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{finished}/mlflow.db")
    exp = client.get_experiment_by_name("tiny_smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert (
        sorted(r.data.tags["sweeps.init"] for r in children)
        == ["base", "base"] + ["sft-step=000003"] * 2 + ["sft-step=000006"] * 2
    )


def test_rerun_skips_every_job(finished):
    before = {p: p.stat().st_mtime for p in finished.glob("tiny_smoke/**/metrics.jsonl")}
    t = time.monotonic()
    res = study(f"paths.output_dir={finished}")
    elapsed = time.monotonic() - t
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p: p.stat().st_mtime for p in finished.glob("tiny_smoke/**/metrics.jsonl")} == before
    print(f"re-run of the finished study: {elapsed:.1f} s")
    assert elapsed < 90
    # the late stages see the same inputs as their last run: no spectral jobs, no re-analysis
    log = res.stdout + res.stderr
    assert "stage spectral: up to date" in log and "stage analysis: up to date" in log


def test_late_stages_rerun_when_their_inputs_change(finished, tmp_path):
    from sweeps.driver import inputs_fingerprint

    root = finished / "tiny_smoke"
    argv = ["-m", "seed=0,1"]
    before = inputs_fingerprint(root, argv)
    assert inputs_fingerprint(root, argv) == before and inputs_fingerprint(root, ["-m", "seed=0"]) != before
    metrics = next(root.glob("sft/*/*/base/seed=0/metrics.jsonl"))
    metrics.write_text(metrics.read_text())  # same bytes, new mtime: a redone job
    assert inputs_fingerprint(root, argv) != before


@pytest.mark.parametrize(
    "override,message",
    [
        ("plan.seeds=[]", "plan.seeds is empty"),
        ("plan.rl.init_roles=[best_guess]", "match no role"),
    ],
)
def test_bad_plans_fail_before_anything_runs(tmp_path, override, message):
    res = study(f"paths.output_dir={tmp_path}", override)
    assert res.returncode != 0
    assert message in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "tiny_smoke").exists()


def test_the_study_ends_with_the_analysis_report(finished):
    import re

    from mlflow.tracking import MlflowClient

    report = finished / "tiny_smoke" / "report" / "index.html"
    html = report.read_text()
    figures = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert figures, "the report shows no figure"
    assert all((report.parent / f).is_file() for f in figures)
    on_disk = {p.name for p in (finished / "tiny_smoke").rglob("*.png")}
    assert on_disk <= {Path(f).name for f in figures}  # every figure written is in the report
    client = MlflowClient(f"sqlite:///{finished}/mlflow.db")
    exp = client.get_experiment_by_name("tiny_smoke")
    parent = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("sweeps.role") == "parent"][0]
    assert any(k.endswith("_lo") for k in parent.data.metrics) and any(k.endswith("_hi") for k in parent.data.metrics)
