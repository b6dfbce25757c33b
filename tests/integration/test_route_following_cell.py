"""A tiny SFT -> GRPO cell on route following, end to end, then the analysis (slow: 19-62 s).

What must hold: both stages finish and write evaluated checkpoints; every evaluation episode
on disk re-grades, turn by turn, to the rewards it was given (the multi-step loop advances a
route only on a correct action); RL trained on the turns it sampled; the analysis reads the
study like any other task's.
"""

from __future__ import annotations

import json

import pytest

from sweeps.cli.train import train
from sweeps.schema import build_task
from sweeps.tasks.base import Example
from tests.conftest import compose

pytestmark = pytest.mark.slow
BASE = ["model=tiny", "task=route_following_tiny", "trainer=smoke", "eval.size=8", "tracking=none", "study=route"]


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    out = tmp_path_factory.mktemp("route")
    train(compose([*BASE, "algo=sft", "seed=0", f"paths.output_dir={out}"]))
    train(
        compose(
            [
                *BASE,
                "algo=grpo",
                "seed=0",
                f"paths.output_dir={out}",
                "init.step=6",
                "algo.group_size=4",
                "algo.max_attempts=2",
                "trainer.max_steps=3",
                "trainer.save_every=3",
            ]
        )
    )
    return out / "route"


def regrade(task, episode: dict) -> list[float]:
    """The rewards the loop should have given the episode's texts: step k until a correct
    action moves it to step k + 1."""
    ex, step, out = Example.from_json(episode["example"]), 0, []
    for text in episode["texts"]:
        grade = task.grade(task.at_step(ex, step), text)
        out.append(grade.reward)
        step += grade.correct
    assert episode["success"] == (step == task.num_steps(ex))
    return out


def test_sft_then_grpo_cell_runs_and_episodes_regrade(cell):
    task = build_task(compose([*BASE]).task)
    sft = cell / "sft" / "tiny" / "route_following_tiny" / "base" / "seed=0"
    rl = cell / "grpo" / "tiny" / "route_following_tiny" / "sft-step=000006" / "seed=0"
    for run, steps in ((sft, ["step=000003", "step=000006"]), (rl, ["step=000003"])):
        assert (run / "DONE").is_file()
        assert sorted(p.name for p in (run / "ckpt").iterdir()) == steps
        for split in ("id", "ood"):
            ev = json.loads((run / "ckpt" / steps[-1] / "eval.json").read_text())
            assert ev[f"eval/{split}/n"] == 8 and 0.0 <= ev[f"eval/{split}/success"] <= 1.0
            assert {f"eval/{split}/err/{c}" for c in task.error_classes} <= set(ev)
            rows = [
                json.loads(x) for x in (run / "ckpt" / steps[-1] / f"episodes_{split}.jsonl").read_text().splitlines()
            ]
            assert len(rows) == 8
            for row in rows:
                assert row["example"]["split"] == split and row["example"]["data"]["step"] == 0
                assert regrade(task, row) == row["rewards"]
                assert (
                    1 <= len(row["texts"]) <= 2 * task.num_steps(Example.from_json(row["example"]))
                )  # 2 attempts per step
    recs = [json.loads(x) for x in (rl / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if "rl/loss" in r]
    assert [r["step"] for r in train_recs] == [1, 2, 3]
    for r in train_recs:
        assert -1.5 <= r["rl/reward_mean"] <= 1.0 and r["rl/turns_per_episode"] >= 1.0


def test_frozen_evalsets_hold_the_same_routes_for_both_stages(cell):
    files = sorted((cell / "evalsets").glob("route_following_tiny-*.jsonl"))
    assert len(files) == 2  # one ID and one OOD set, shared by SFT and RL
    ood = [json.loads(x) for x in next(f for f in files if "-ood-" in f.name).read_text().splitlines()]
    assert len(ood) == 8 and all(e["split"] == "ood" for e in ood)


def test_analysis_reads_the_study(cell):
    from sweeps.analysis.stage import analyze

    summary = analyze(compose([f"study={cell}", "tracking=none", "analysis.n_resamples=199"], config_name="analyze"))
    assert summary["missing"] == 0 and summary["figures"] >= 3
    assert (cell / "analysis" / "figures" / "errors_tiny_route_following_tiny.png").is_file()
