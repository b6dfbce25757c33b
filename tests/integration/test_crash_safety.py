"""Crash safety end to end (slow): SIGKILL at random moments, SIGTERM, planted trainer states.

Every interrupted job is re-run with the same command and must end with exactly the metrics of
an uninterrupted run with the same seed (metrics.jsonl equal record for record, timings aside).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
EXE = str(BIN / "sweeps-train")
TASK = [
    "model=tiny",
    "task=determinant_small",
    "eval.splits=[id,ood]",
    "tracking=none",
    "trainer=smoke",
    "eval.size=8",
    "trainer.eval_at_start=false",
]
SFT = [*TASK, "algo=sft", "trainer.max_steps=12", "trainer.save_every=4", "trainer.batch_size=16"]
RL = {
    algo: [
        *TASK,
        f"algo={algo}",
        "init.step=12",
        "init.sft_study=base",
        "trainer.max_steps=6",
        "trainer.save_every=3",
        "trainer.batch_size=16",
        f"algo.group_size={1 if algo == 'ppo' else 4}",
    ]
    for algo in ("grpo", "ppo")
}


def sft_run(out: Path, study: str, seed: int = 0) -> Path:
    return out / study / "sft" / "tiny" / "determinant_small" / "base" / f"seed={seed}"


def rl_run(out: Path, study: str, algo: str, seed: int = 0) -> Path:
    return out / study / algo / "tiny" / "determinant_small" / "sft-step=000012" / f"seed={seed}"


def records(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(x).items() if not k.startswith("time/")}
        for x in (run / "metrics.jsonl").read_text().splitlines()
    ]


def train(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One SFT run (the RL init, study 'base') and uninterrupted references of every job."""
    out = tmp_path_factory.mktemp("faults")
    for args in (SFT + ["study=base"], SFT + ["study=ref"], RL["grpo"] + ["study=ref"], RL["ppo"] + ["study=ref"]):
        res = train([*args, "seed=0", f"paths.output_dir={out}"])
        assert res.returncode == 0, res.stderr[-2000:]
    return out


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
        if f'"step": {step},' in text or f'"step": {step}}}' in text:
            return
        time.sleep(0.02)
    raise AssertionError(f"{run} never logged step {step}")


# Ten SIGKILLs: the job (SFT or RL), the step whose metrics must be written first, then a random
# delay of up to 1.5 s, so the kill lands anywhere: in a step, an evaluation, a checkpoint or
# trainer-state write (seeded: the same ten moments on every run of the suite).
_rng = random.Random(2509)
TRIALS = [
    (stage, _rng.randint(1, 10 if stage == "sft" else 5), round(_rng.uniform(0, 1.5), 2))
    for stage in ["sft"] * 4 + ["grpo"] * 3 + ["ppo"] * 3
]


@pytest.mark.parametrize("trial", range(len(TRIALS)))
def test_sigkill_anywhere_then_rerun_equals_the_uninterrupted_run(base, trial):
    stage, step, delay = TRIALS[trial]
    study = f"kill{trial}"
    args = [*(SFT if stage == "sft" else RL[stage]), f"study={study}", "seed=0", f"paths.output_dir={base}"]
    run, ref = (
        (sft_run(base, study), sft_run(base, "ref"))
        if stage == "sft"
        else (rl_run(base, study, stage), rl_run(base, "ref", stage))
    )
    proc = start(args)
    wait_for_step(run, step, proc)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    res = train(args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (run / "DONE").exists()
    assert records(run) == records(ref)
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == sorted(p.name for p in (ref / "ckpt").iterdir())


@pytest.mark.parametrize("stage", ["sft", "ppo"])
def test_sigterm_saves_the_step_exits_143_and_resumes(base, stage):
    study = f"term_{stage}"
    args = [*(SFT if stage == "sft" else RL[stage]), f"study={study}", "seed=0", f"paths.output_dir={base}"]
    run, ref = (
        (sft_run(base, study), sft_run(base, "ref"))
        if stage == "sft"
        else (rl_run(base, study, stage), rl_run(base, "ref", stage))
    )
    proc = start(args)
    wait_for_step(run, 5 if stage == "sft" else 4, proc)  # past a checkpoint step, before the next
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 143, err[-2000:]
    assert took < 20, f"SIGTERM took {took:.1f} s to stop the job"
    state = json.loads((run / "resume" / "state.json").read_text())
    last = err.strip().splitlines()[-1]
    assert last == (
        f"stopped: SIGTERM: stopped at step {state['step']} with its trainer state saved in "
        f"{run / 'resume'}; re-run the same command (or requeue) to resume"
    )
    assert state["step"] in ((5, 6, 7) if stage == "sft" else (4, 5))  # not a checkpoint step
    assert json.loads((run / "FAILED").read_text())["error"].startswith("Preempted: SIGTERM: stopped at step")
    assert not (run / "DONE").exists()
    res = train(args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming {run} from step {state['step']}" in res.stdout + res.stderr
    assert records(run) == records(ref) and not (run / "FAILED").exists()


def test_sigterm_to_a_two_process_job_stops_both_ranks_and_resumes(base):
    args = [*SFT, "trainer.devices=2", "trainer/strategy=ddp", "study=term_ddp", "seed=0", f"paths.output_dir={base}"]
    run = sft_run(base, "term_ddp")
    proc = start(args)
    wait_for_step(run, 5, proc)
    proc.send_signal(signal.SIGTERM)  # to the agent only: it passes it on
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err[-2000:]
    step = json.loads((run / "resume" / "state.json").read_text())["step"]
    assert step >= 5 and step not in (8, 12)
    assert err.strip().splitlines()[-1].startswith("stopped: ")
    res = train(args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r["step"] for r in records(run) if "train/loss" in r] == list(range(1, 13))


def test_a_planted_pickle_payload_in_the_trainer_state_is_refused_unrun(base):
    """A resume state that would run code on unpickling: one line, and the code never runs."""
    import torch

    study = "planted"
    args = [*SFT, f"study={study}", "seed=0", f"paths.output_dir={base}", "trainer.max_steps=8"]
    run = sft_run(base, study)
    proc = start(args)
    wait_for_step(run, 5, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    marker = base / f"pwned-{uuid.uuid4().hex}"
    state = json.loads((run / "resume" / "state.json").read_text())
    ckpt = torch.load(run / "resume" / state["path"], weights_only=True)

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt["callbacks"]["planted"] = Payload()
    torch.save(ckpt, run / "resume" / state["path"])
    res = train(args)
    assert res.returncode == 1 and not marker.exists()
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {run / 'resume' / state['path']}: the trainer state holds more than tensors")
    assert last.endswith(f"delete {run / 'resume'} to start the run over")


def test_sigterm_during_an_evaluation_stops_between_batches(base):
    """A long checkpoint evaluation is cut short (one process): the checkpoint is redone on resume."""
    args = [
        *SFT,
        "trainer.eval_at_start=true",
        "eval.size=64",
        "eval.batch_size=2",
        "study=term_eval",
        "seed=0",
        f"paths.output_dir={base}",
    ]
    run = sft_run(base, "term_eval")
    proc = start(args)
    deadline = time.monotonic() + 300
    while not (run / "ckpt" / "step=000000").is_dir() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)  # the weights are saved, the evaluation starts
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "stopped: SIGTERM: stopped while evaluating step 0; re-run the same "
        "command (or requeue) to resume from the last saved trainer state"
    )
    assert took < 10, f"{took:.1f} s"
    assert not (run / "ckpt" / "step=000000" / "eval.json").exists()
    res = train(args)
    assert res.returncode == 0, res.stderr[-2000:]
    evals = [r["step"] for r in records(run) if "eval/id/success" in r]
    assert evals == [0, 4, 8, 12]
