"""Fault handling without a job: unsafe trainer states refused, failed writes leave the previous
state valid, an unwritable output directory named, the smoke trainer's caps."""

from __future__ import annotations

import json
import pickle
import uuid
from pathlib import Path

import pytest
import torch

from sweeps.cli.train import check_writable
from sweeps.modules.callbacks import check_sharded_metadata, resume_state, save_resume_state
from sweeps.runs import Run
from sweeps.schema import validate
from tests.conftest import compose


class Payload:
    """Unpickling it runs ``Path(marker).touch()``: what a planted trainer state could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_sharded_metadata_with_a_code_payload_is_refused_unrun(tmp_path):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    meta = tmp_path / "step=000004.ckpt" / ".metadata"
    meta.parent.mkdir()
    meta.write_bytes(pickle.dumps({"state_dict_metadata": Payload(marker)}))
    with pytest.raises(ValueError) as err:
        check_sharded_metadata(meta, tmp_path)
    assert not marker.exists()
    assert str(err.value) == (
        f"{meta}: not a sharded trainer state's metadata that is safe to load (refers to "
        f"pathlib.Path.touch); delete {tmp_path} to start the run over"
    )


def test_real_sharded_metadata_passes(tmp_path):
    import torch.distributed.checkpoint as dcp

    state = {"w": torch.arange(6.0).reshape(2, 3), "loops": {"step": 4, "name": "fit"}}
    dcp.save(state, checkpoint_id=str(tmp_path / "state"), no_dist=True)
    check_sharded_metadata(tmp_path / "state" / ".metadata", tmp_path)  # no error


def test_truncated_metadata_is_one_line(tmp_path):
    meta = tmp_path / ".metadata"
    meta.write_bytes(pickle.dumps({"a": torch.Size([2, 3])})[:7])
    with pytest.raises(ValueError, match=r"\.metadata: not a sharded trainer state"):
        check_sharded_metadata(meta, tmp_path)


class FakeTrainer:
    """``save_checkpoint`` writes part of a file, then fails like a full disk (or succeeds)."""

    def __init__(self, fail: bool):
        self.fail, self.strategy = fail, object()

    def save_checkpoint(self, path, weights_only=None):
        assert weights_only is False
        Path(path).write_bytes(b"partial")
        if self.fail:
            raise OSError(28, "No space left on device")
        Path(path).write_bytes(b"complete state")


def test_a_failed_state_write_leaves_the_previous_state_valid(tmp_path):
    run = Run(tmp_path / "run")
    save_resume_state(FakeTrainer(fail=False), run, 4)
    with pytest.raises(OSError, match="No space left"):
        save_resume_state(FakeTrainer(fail=True), run, 8)
    step, path = resume_state(run)
    assert step == 4 and path.read_bytes() == b"complete state"
    save_resume_state(FakeTrainer(fail=False), run, 8)  # the next write cleans up
    assert resume_state(run)[0] == 8
    assert sorted(p.name for p in run.resume_dir.iterdir()) == ["state.json", "step=000008.ckpt"]
    assert json.loads((run.resume_dir / "state.json").read_text())["path"] == "step=000008.ckpt"


def test_a_failed_weights_write_is_not_a_checkpoint(tmp_path, tiny, monkeypatch):
    from sweeps.models.checkpoint import save_checkpoint

    model, tok = tiny
    run = Run(tmp_path / "run")
    save_checkpoint(model, tok, run.ckpt(4))

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(tok), "save_pretrained", full_disk)  # after the weights were written
    with pytest.raises(OSError):
        save_checkpoint(model, tok, run.ckpt(8))
    assert [s for s, _ in run.checkpoints()] == [4]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_unwritable_output_dir_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError) as err:
        check_writable(blocker / "study" / "run")
    assert str(err.value).startswith(f"paths.output_dir: cannot write the run directory {blocker}/study/run")
    with pytest.raises(ValueError, match="choose a writable paths.output_dir"):
        check_writable(Path("/proc/sweeps-out/run"))  # a read-only file system, even for root
    check_writable(tmp_path / "fine" / "run")


def test_smoke_caps_lower_eval_attempts_and_tokens_and_show_in_the_config():
    cfg = compose(["algo=sft", "model=tiny", "task=general_points", "trainer=smoke"])
    validate(cfg)
    assert (cfg.eval.size, cfg.task.max_attempts, cfg.task.max_new_tokens) == (16, 2, 48)
    cfg = compose(
        [
            "algo=grpo",
            "model=tiny",
            "task=determinant_small",
            "trainer=smoke",
            "eval.size=8",
            "task.max_attempts=1",
            "algo.max_attempts=null",
            "init.step=3",
        ]
    )
    validate(cfg)
    assert (cfg.eval.size, cfg.task.max_attempts, cfg.algo.max_attempts, cfg.task.max_new_tokens) == (8, 1, None, 12)
    cfg = compose(["algo=sft", "model=tiny", "task=general_points", "trainer=cpu"])  # no caps
    validate(cfg)
    assert (cfg.eval.size, cfg.task.max_attempts, cfg.task.max_new_tokens) == (None, 5, 256)


def test_a_zero_cap_is_refused():
    from sweeps.schema import ConfigError

    with pytest.raises(ConfigError, match=r"trainer.max_new_tokens must be > 0 or null \(no cap\), got 0"):
        validate(compose(["algo=sft", "model=tiny", "trainer=smoke", "trainer.max_new_tokens=0"]))
