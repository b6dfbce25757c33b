import pytest

from sweeps.runs import Run, RunConflictError, atomic_write_text, iter_metrics, run_dir, signature


def test_run_dir_is_derived_from_axes():
    p = run_dir("/o", "study", "sft", "tiny", "general_points", "base", 3)
    assert str(p) == "/o/study/sft/tiny/general_points/base/seed=3"


def test_signature_ignores_paths_tracking_and_launcher_only():
    cfg = {"seed": 0, "algo": {"lr": 1e-3}, "paths": {"output_dir": "/a"}, "tracking": {"uri": "x"}}
    moved = {**cfg, "paths": {"output_dir": "/b"}, "tracking": {"uri": "y"}, "parent_run_id": "r"}
    assert signature(cfg) == signature(moved)
    assert signature(cfg) != signature({**cfg, "seed": 1})
    assert signature(cfg) != signature({**cfg, "algo": {"lr": 2e-3}})


def test_claim_new_resume_skip_conflict(tmp_path):
    run = Run(tmp_path / "r")
    assert run.claim("abc", "a: 1\n") == "new"
    assert run.claim("abc", "a: 1\n") == "resume"
    run.mark_done({"x": 1})
    assert run.claim("abc", "a: 1\n") == "skip"
    with pytest.raises(RunConflictError, match="signature abc.*def"):
        run.claim("def", "a: 2\n")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "one")
    atomic_write_text(tmp_path / "f.txt", "two")
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    assert (tmp_path / "f.txt").read_text() == "two"


def test_torn_metrics_line_is_ignored(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a": 2.0}\n{"step": 3, "a"')
    assert [r["step"] for r in iter_metrics(f)] == [1, 2]


def test_checkpoints_listed_by_step_and_truncate(tmp_path):
    run = Run(tmp_path)
    for s in (20, 3, 100):
        run.ckpt(s).mkdir(parents=True)
    assert [s for s, _ in run.checkpoints()] == [3, 20, 100]
    run.metrics_file.write_text("".join(f'{{"step": {s}}}\n' for s in range(6)))
    run.truncate_metrics(lambda r: r["step"] <= 3)
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2, 3]
