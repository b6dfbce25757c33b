"""Jobs on two CPU processes (gloo) against the same jobs on one (slow).

Two processes with the same global batch must compute what one process computes: the same
examples, episodes and seeds, the loss normalised over the whole batch, metrics reduced over
ranks. Float sums in another order differ in the last bits, hence the tolerances; everything
counted (successes, rewards, lengths) must be equal. Also: rank 0 alone writes (one MLflow
run, every metric record once), the FSDP resume state is per-rank shards, a SIGKILLed
two-process job resumes to the same result, and a rank's bad input is one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_and_kill

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SFT = ["algo=sft", "model=tiny", "task=general_points_compact", "trainer=smoke", "eval.size=8", "seed=0"]
TWO = {"ddp": ["trainer.devices=2", "trainer/strategy=ddp"], "fsdp": ["trainer.devices=2", "trainer/strategy=fsdp"]}
COUNTED = (
    "rl/reward_mean",
    "rl/return_mean",
    "rl/success",
    "rl/mixed_groups",
    "rl/turns_per_episode",
    "rl/response_len",
)


def sweeps(args: list[str], out: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [str(BIN / "sweeps-train"), *args, f"paths.output_dir={out}"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def sft_run(out: Path, seed: int = 0) -> Path:
    return out / "default" / "sft" / "tiny" / "general_points_compact" / "base" / f"seed={seed}"


def same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN (undefined) on both sides


def assert_same_curves(one: list[dict], two: list[dict], keys: tuple[str, ...], rel: float) -> None:
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        assert set(a) == set(b)
        for k in keys:
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=rel, abs=1e-7), (a["step"], k)
        for k in (k for k in a if k.startswith("eval/")):
            assert same(b[k], a[k]), (a["step"], k)  # counts of the same episodes


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    sweeps([*SFT, "tracking=none"], out)
    return out


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_sft_on_two_processes_gives_the_one_process_curve(one_process, tmp_path, strategy):
    import transformers
    from mlflow.tracking import MlflowClient
    from safetensors.torch import load_file

    res = sweeps([*SFT, *TWO[strategy]], tmp_path)
    log = res.stdout + res.stderr
    assert "rank 0 of 2" in log and "rank 1 of 2" in log
    one, two = records(sft_run(one_process)), records(sft_run(tmp_path))
    assert [r["step"] for r in two if "train/loss" in r] == [1, 2, 3, 4, 5, 6]  # each step once: rank 0 writes
    assert_same_curves(one, two, ("train/loss", "train/lr"), rel=1e-6)
    ckpt = sft_run(tmp_path) / "ckpt" / "step=000006"
    assert json.loads((ckpt / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    transformers.AutoModelForCausalLM.from_pretrained(ckpt)
    a, b = load_file(sft_run(one_process) / "ckpt/step=000006/model.safetensors"), load_file(ckpt / "model.safetensors")
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    state = json.loads((sft_run(tmp_path) / "resume" / "state.json").read_text())
    resume = sft_run(tmp_path) / "resume" / state["path"]
    if strategy == "fsdp":  # one shard per rank
        assert sorted(p.name for p in resume.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    else:
        assert resume.is_file()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "train/loss")) == 6


@pytest.fixture(scope="module")
def sft_base(tmp_path_factory):
    """An SFT checkpoint (step 40) of the tiny model on determinant_small for the RL jobs."""
    out = tmp_path_factory.mktemp("rl")
    sweeps(
        [
            "task=determinant_small",
            "eval.splits=[id]",
            "tracking=none",
            "study=rl",
            "seed=0",
            "trainer=cpu",
            "trainer.max_steps=40",
            "trainer.batch_size=32",
            "trainer.save_every=[40]",
            "trainer.eval_at_start=false",
            "eval.size=16",
        ],
        out,
    )
    return out


def rl(base: Path, study: str, algo: str, *extra: str) -> Path:
    """An RL job of study ``study`` from the SFT run of study "rl" in ``base``; its run directory."""
    group = "1" if algo == "ppo" else "8"
    sweeps(
        [
            "task=determinant_small",
            "eval.splits=[id]",
            "tracking=none",
            f"study={study}",
            "init.sft_study=rl",
            "seed=0",
            f"algo={algo}",
            f"algo.group_size={group}",
            "init.step=40",
            "trainer=rl_cpu",
            "trainer.max_steps=3",
            "trainer.save_every=3",
            "trainer.batch_size=32",
            "eval.temperature=1.0",
            "eval.size=24",
            "algo.optimizer.lr=3e-4",
            *extra,
        ],
        base,
    )
    return base / study / algo / "tiny" / "determinant_small" / "sft-step=000040" / "seed=0"


@pytest.mark.parametrize("algo,strategy", [("grpo", "ddp"), ("reinforce", "fsdp")])
def test_policy_gradient_on_two_processes_reduces_metrics_exactly(sft_base, algo, strategy):
    one = records(rl(sft_base, f"{algo}_one", algo))
    two = records(rl(sft_base, f"{algo}_{strategy}", algo, *TWO[strategy]))
    steps = [r for r in one if "rl/loss" in r]
    assert len(steps) == 3 and any(r["rl/mixed_groups"] > 0 for r in steps)  # some groups carry signal
    for a, b in zip(one, two):
        for k in COUNTED:  # the same 32 episodes per step, counted across both ranks
            if k in a:
                assert same(b[k], a[k]), (a["step"], k)
    assert_same_curves(one, two, ("rl/loss", "rl/grad_norm", "train/lr"), rel=1e-4)


def test_ppo_ddp_and_fsdp_agree_with_uneven_turns_per_rank(sft_base):
    """PPO with the 5-attempt loop: ranks hold different numbers of turns, so the ranks with
    fewer micro-batches pad with zero-weighted passes; the critic is sharded under FSDP and the
    advantages are whitened over both ranks. DDP (no padding needed) must agree."""
    args = [
        "task.max_attempts=3",
        "algo.max_attempts=null",
        "algo.epochs=2",
        "algo.minibatches=2",
        "algo.micro_batch_size=4",
        "algo.temperature=1.0",
        "algo.optimizer.lr=1e-4",
        "trainer.batch_size=16",
        "trainer.max_steps=2",
        "trainer.save_every=2",
    ]
    ddp = records(rl(sft_base, "ppo_ddp", "ppo", *args, *TWO["ddp"]))
    fsdp = records(rl(sft_base, "ppo_fsdp", "ppo", *args, *TWO["fsdp"]))
    assert any(r.get("rl/turns_per_episode", 1) > 1 for r in ddp)  # failed attempts were retried
    for a, b in zip(ddp, fsdp):
        for k in COUNTED:
            if k in a:
                assert same(b[k], a[k]), (a["step"], k)
    assert_same_curves(ddp, fsdp, ("rl/loss", "rl/value_loss", "rl/pg_loss", "rl/grad_norm"), rel=1e-4)


def test_sigkill_of_a_two_process_job_resumes_to_the_same_result(tmp_path):
    args = [*SFT, "trainer.max_steps=12", "trainer.save_every=4", "seed=3", "tracking=none", *TWO["fsdp"]]
    sweeps(args, tmp_path / "ref")
    out = tmp_path / "killed"
    run = sft_run(out, 3)
    run_and_kill([str(BIN / "sweeps-train"), *args, f"paths.output_dir={out}"], run, 6)  # the agent and both ranks
    assert not (run / "DONE").exists()
    assert json.loads((run / "resume" / "state.json").read_text())["step"] == 4
    res = sweeps(args, out)
    assert "resuming" in res.stdout + res.stderr
    assert (run / "metrics.jsonl").read_text() == (sft_run(tmp_path / "ref", 3) / "metrics.jsonl").read_text()


def test_bad_input_on_a_rank_is_one_line(tmp_path):
    res = subprocess.run(
        [
            str(BIN / "sweeps-train"),
            *SFT,
            "tracking=none",
            *TWO["fsdp"],
            "trainer.strategy.blocks=[NoSuchBlock]",
            f"paths.output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: rank ")
        and " of 2 failed: ValueError: trainer.strategy.blocks=['NoSuchBlock'] "
        "matches no module of LlamaForCausalLM: name its transformer block class (e.g. [LlamaDecoderLayer])"
        in last
    )
