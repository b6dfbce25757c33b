"""End-to-end SFT jobs through the real command line (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_and_kill

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SMOKE = ["algo=sft", "model=tiny", "task=general_points_compact", "trainer=smoke", "eval.size=8"]


def sweeps(cmd: str, args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd), *args], capture_output=True, text=True, timeout=600, **kw)


def run_path(out: Path, seed: int, study: str = "default") -> Path:
    return out / study / "sft" / "tiny" / "general_points_compact" / "base" / f"seed={seed}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    res = sweeps("sweeps-train", [*SMOKE, "seed=0", f"paths.output_dir={out}", "trainer.rotation_monitor=3"])
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_writes_hf_checkpoints_each_evaluated(finished):
    import transformers

    run = run_path(finished, 0)
    ckpts = sorted((run / "ckpt").iterdir())
    assert [c.name for c in ckpts] == ["step=000003", "step=000006"]
    for c in ckpts:
        transformers.AutoModelForCausalLM.from_pretrained(c)  # loadable as is
        ev = json.loads((c / "eval.json").read_text())
        for split in ("id", "ood"):
            assert 0.0 <= ev[f"eval/{split}/success"] <= 1.0
            assert ev[f"eval/{split}/success_lo"] <= ev[f"eval/{split}/success"] <= ev[f"eval/{split}/success_hi"]
            assert ev[f"eval/{split}/n"] == 8
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in recs if "eval/ood/success" in r] == [3, 6]
    assert all(r["train/lr"] >= 0 for r in recs if "train/lr" in r)
    assert (run / "DONE").is_file() and (run / "signature").is_file()
    rotation = [r["rotation/angle_mean"] for r in recs if "rotation/angle_mean" in r]
    assert len(rotation) == 2 and 0 < rotation[0] < rotation[1]  # the online monitor: rotation grows


def test_metrics_are_in_mlflow_with_axis_tags(finished):
    from mlflow.tracking import MlflowClient

    run = run_path(finished, 0)
    state = json.loads((run / "mlflow.json").read_text())
    client = MlflowClient(f"sqlite:///{finished}/mlflow.db")
    r = client.get_run(state["run_id"])
    assert r.info.status == "FINISHED"
    assert r.data.tags["sweeps.seed"] == "0" and r.data.tags["sweeps.task"] == "general_points_compact"
    assert r.data.params["algo.optimizer.lr"] == "0.001"
    assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "eval/ood/success")) == [3, 6]
    assert len(client.get_metric_history(r.info.run_id, "train/loss")) == 6


def test_rerun_is_a_fast_skip(finished):
    run = run_path(finished, 0)
    before = (run / "metrics.jsonl").read_text()
    t = time.monotonic()
    res = sweeps("sweeps-train", [*SMOKE, "seed=0", f"paths.output_dir={finished}", "trainer.rotation_monitor=3"])
    elapsed = time.monotonic() - t
    assert res.returncode == 0 and "skip" in res.stdout + res.stderr
    assert elapsed < 10, elapsed
    assert (run / "metrics.jsonl").read_text() == before


def test_different_config_in_same_dir_is_refused(finished):
    res = sweeps(
        "sweeps-train",
        [*SMOKE, "seed=0", "algo.optimizer.lr=0.002", f"paths.output_dir={finished}", "trainer.rotation_monitor=3"],
    )
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run directory") and "signature" in last


def test_standalone_eval_scores_a_checkpoint(finished, tmp_path):
    ckpt = run_path(finished, 0) / "ckpt" / "step=000006"
    res = sweeps(
        "sweeps-eval",
        [
            f"ckpt='{ckpt}'",
            "task=general_points_compact",
            "eval.size=8",
            f"paths.output_dir={finished}",
            f"out={tmp_path}",
        ],
    )
    assert res.returncode == 0, res.stderr[-2000:]
    mine = json.loads((tmp_path / "eval.json").read_text())
    during_training = json.loads((ckpt / "eval.json").read_text())
    # same frozen set, same greedy decoding -> the same scores as in training
    assert mine["eval/ood/success"] == during_training["eval/ood/success"]
    assert mine["eval/id/reward_mean"] == pytest.approx(during_training["eval/id/reward_mean"])


def test_eval_of_a_directory_without_weights_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    res = sweeps("sweeps-eval", [f"ckpt={tmp_path}", "task=general_points_compact"])
    assert res.returncode != 0
    assert (
        res.stderr.strip().splitlines()[-1]
        == f"error: checkpoint directory {tmp_path} has no *.safetensors weights: save it with save_pretrained(safe_serialization=True)"
    )


def test_sigkill_mid_run_resumes_to_the_same_result(tmp_path):
    args = [*SMOKE, "trainer.max_steps=12", "trainer.save_every=4", "seed=3", "tracking=none"]
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    assert sweeps("sweeps-train", [*args, f"paths.output_dir={ref_out}"]).returncode == 0
    run = run_path(out, 3)
    run_and_kill(
        [str(BIN / "sweeps-train"), *args, f"paths.output_dir={out}"], run, 6
    )  # after step 4's state, before 8's
    assert not (run / "DONE").exists()
    assert json.loads((run / "resume" / "state.json").read_text())["step"] == 4
    res = sweeps("sweeps-train", [*args, f"paths.output_dir={out}"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming" in res.stdout + res.stderr
    ref = run_path(ref_out, 3)
    assert (run / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
