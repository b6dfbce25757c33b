"""Progress as users see it: durations, a job's progress.json and log line, a study stage's state."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from sweeps import progress
from sweeps.runs import Run


@pytest.mark.parametrize(
    "seconds,text", [(None, "?"), (42.4, "42s"), (185, "3m05s"), (3720, "1h02m"), (float("inf"), "?")]
)
def test_durations_read_like_a_clock(seconds, text):
    assert progress.duration(seconds) == text


def test_a_job_writes_progress_json_and_a_log_line_without_a_terminal(tmp_path, caplog, monkeypatch):
    from sweeps.modules.progress import Progress

    monkeypatch.setattr("sweeps.modules.progress.interactive", lambda: False)
    clock = iter([100.0, 110.0, 110.0, 110.0])  # start, then 10 s later
    monkeypatch.setattr("sweeps.modules.progress.time.monotonic", lambda: next(clock))
    evaluations = SimpleNamespace(last=(20, {"eval/id/success": 0.25, "eval/ood/success": 0.125, "eval/id/n": 8.0}))
    cb = Progress(Run(tmp_path), "sft/tiny/t/base/seed=0", 100, every_s=5.0, evaluations=evaluations)
    module = SimpleNamespace(stage_step=0, step_metrics={"train/loss": 1.5})
    cb.on_train_start(None, module)
    module.stage_step = 25
    with caplog.at_level(logging.INFO, logger="sweeps.progress"):
        cb.on_train_batch_end(None, module, None, None, 0)
    state = json.loads((tmp_path / "progress.json").read_text())
    assert state == {"step": 25, "max_steps": 100, "elapsed_s": 10.0, "eta_s": 30.0}  # 2.5 steps/s, 75 to go
    assert caplog.messages == [
        "sft/tiny/t/base/seed=0: step 25/100 (25%), 2.50 steps/s, ETA 30s, loss 1.5000, id 0.250 ood 0.125 (step 20)"
    ]


def test_a_job_on_a_terminal_shows_a_bar(tmp_path, monkeypatch):
    from sweeps.modules.progress import Progress

    bars = []

    class Bar:
        n = 0

        def __init__(self, total, initial, desc, unit):
            self.args, self.n, self.postfix, self.closed = (total, initial, desc, unit), initial, "", False
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix_str(self, s):
            self.postfix = s

        def close(self):
            self.closed = True

    monkeypatch.setattr("sweeps.modules.progress.interactive", lambda: True)
    monkeypatch.setattr("sweeps.modules.progress.bar", Bar)
    cb = Progress(Run(tmp_path), "grpo/x", 40, every_s=1e9)
    module = SimpleNamespace(stage_step=10, step_metrics={})  # resumed at step 10
    cb.on_train_start(None, module)
    module.stage_step = 11
    cb.on_train_batch_end(None, module, {"loss": 0.25}, None, 0)
    cb.on_train_end(None, module)
    assert bars[0].args == (40, 10, "grpo/x", "step") and bars[0].n == 11
    assert bars[0].postfix == "loss 0.2500" and bars[0].closed


def test_a_stage_counts_done_failed_and_running_jobs(tmp_path):
    runs = [tmp_path / f"seed={s}" for s in range(4)]
    for r in runs:
        r.mkdir()
    (runs[0] / "DONE").write_text("{}")
    (runs[1] / "FAILED").write_text("{}")
    (runs[2] / "progress.json").write_text(json.dumps({"step": 50, "max_steps": 100}))
    state = progress.stage_state(runs, started=0.0, now=60.0)  # run 3 not started yet
    assert (state.total, state.done, state.failed, state.running) == (4, 1, 1, 1)
    assert state.fraction == pytest.approx((1 + 0.5) / 4)
    assert state.eta == pytest.approx(60 * (1 - 0.375) / 0.375)  # 100 s
    assert state.line("sft") == "stage sft: 1/4 jobs done, 1 failed, 1 running, 38% of the steps, ETA 1m40s"


def test_a_failed_job_leaves_failed_until_it_is_run_again(tmp_path):
    run = Run(tmp_path / "r")
    run.claim("abc", "x: 1\n")
    run.mark_failed(FloatingPointError("non-finite SFT loss nan at step 3\nmore"))
    assert json.loads((run.path / "FAILED").read_text()) == {
        "error": "FloatingPointError: non-finite SFT loss nan at step 3"
    }
    assert run.claim("abc", "x: 1\n") == "resume" and not (run.path / "FAILED").exists()
