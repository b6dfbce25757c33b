"""Rotation-preserving SFT through the real command line (slow, ~1-2 min on a quiet machine).

- λ = 0 (with the other regulariser keys changed) is plain SFT: the same run directory, the same
  signature, and bit for bit the same loss curve and weights after 6 steps of the tiny model;
- λ > 0 lands in its own directory (``base+rotreg_...``), logs ``train/rotation_reg`` and trains
  other weights;
- with λ > 0, two DDP processes give the one-process curves (loss and penalty);
- the angle variant resumes after SIGKILL to the uninterrupted curve (its bases are trainer state);
- FSDP is refused in one line naming the key (by the schema in one process; by the module when
  the ranks were started first, since they get an untyped copy of the config).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SMOKE = [
    "algo=sft",
    "model=tiny",
    "task=general_points_compact",
    "trainer=smoke",
    "eval.size=8",
    "seed=0",
    "tracking=none",
]
ON = ["algo.rotation_reg.lam=1", "algo.rotation_reg.k=8"]


def train(args: list[str], out: Path, ok: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [str(BIN / "sweeps-train"), *SMOKE, *args, f"paths.output_dir={out}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (res.returncode == 0) == ok, res.stderr[-3000:]
    return res


def run(out: Path, init: str = "base") -> Path:
    return out / "default" / "sft" / "tiny" / "general_points_compact" / init / "seed=0"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def train_curve(path: Path, key: str = "train/loss") -> list[float]:
    return [r[key] for r in records(path) if key in r]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    train([], out)
    return out


def test_lambda_zero_is_plain_sft_bit_for_bit(plain, tmp_path):
    train(["algo.rotation_reg.lam=0", "algo.rotation_reg.k=4", "algo.rotation_reg.variant=angle"], tmp_path)
    a, b = run(plain), run(tmp_path)
    assert (a / "signature").read_text() == (b / "signature").read_text()
    assert train_curve(a) == train_curve(b) and len(train_curve(a)) == 6
    assert not any("train/rotation_reg" in r for r in records(b))
    for step in ("step=000003", "step=000006"):
        assert (a / "ckpt" / step / "model.safetensors").read_bytes() == (
            b / "ckpt" / step / "model.safetensors"
        ).read_bytes()


def test_lambda_on_has_its_own_directory_and_changes_the_weights(plain):
    train(ON, plain)  # same output dir: no conflict with the plain run
    reg = run(plain, "base+rotreg_block_k8_lam1")
    penalty = train_curve(reg, "train/rotation_reg")
    assert len(penalty) == 6 and penalty[0] == pytest.approx(0.0, abs=1e-9) and penalty[-1] > 0
    assert train_curve(reg)[0] == train_curve(run(plain))[0]  # step 1: same weights, same batch
    assert (reg / "ckpt" / "step=000006" / "model.safetensors").read_bytes() != (
        run(plain) / "ckpt" / "step=000006" / "model.safetensors"
    ).read_bytes()


def test_ddp_gives_the_one_process_curves_and_fsdp_is_refused(plain, tmp_path):
    train(ON, plain) if not (run(plain, "base+rotreg_block_k8_lam1") / "DONE").is_file() else None
    train([*ON, "trainer.devices=2", "trainer/strategy=ddp"], tmp_path)
    one, two = run(plain, "base+rotreg_block_k8_lam1"), run(tmp_path, "base+rotreg_block_k8_lam1")
    for key in ("train/loss", "train/rotation_reg"):
        assert train_curve(two, key) == pytest.approx(train_curve(one, key), rel=1e-5, abs=1e-7)
    res = train([*ON, "trainer.devices=2", "trainer/strategy=fsdp"], tmp_path / "fsdp", ok=False)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "algo.rotation_reg.lam > 0 needs whole parameters" in lines[-1]
    assert (
        "trainer/strategy=fsdp" in lines[-1]
        and not (
            tmp_path
            / "fsdp"
            / "default"
            / "sft"
            / "tiny"
            / "general_points_compact"
            / "base+rotreg_block_k8_lam1"
            / "seed=0"
            / "DONE"
        ).exists()
    )


def test_angle_penalty_resumes_after_sigkill_to_the_uninterrupted_curve(tmp_path):
    """The angle variant's current bases live in the trainer state: a job killed after step 4
    resumes from step 3 with the bases re-estimated at step 2, and ends as the uninterrupted run."""
    from tests.conftest import run_and_kill

    angle = [*ON, "algo.rotation_reg.variant=angle", "algo.rotation_reg.refresh=2"]
    train(angle, tmp_path / "ref")
    out, init = tmp_path / "killed", "base+rotreg_angle_k8_lam1_r2"
    run_and_kill([str(BIN / "sweeps-train"), *SMOKE, *angle, f"paths.output_dir={out}"], run(out, init), 4)
    assert not (run(out, init) / "DONE").exists()
    res = train(angle, out)
    assert "resuming" in res.stdout + res.stderr
    for key in ("train/loss", "train/rotation_reg"):
        assert train_curve(run(out, init), key) == pytest.approx(
            train_curve(run(tmp_path / "ref", init), key), rel=1e-6
        )
    assert len(train_curve(run(out, init), "train/rotation_reg")) == 6
