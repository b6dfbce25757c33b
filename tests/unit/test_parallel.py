"""Ranks, collectives, launching checks and strategy configs (sweeps.parallel).

The collectives are checked for real on two CPU processes (gloo) started the way a job starts
its ranks (``launch.spawn``, a torch elastic agent); the rest needs one process.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from sweeps.parallel import launch, world
from tests.conftest import compose


def two_rank_checks(cfg):
    """Run on each of two ranks; returns what rank 0 saw (the test asserts on it)."""
    from sweeps.rl.advantages import normalize

    with launch.ranks(cfg):
        w = world.world()
        seen = {"world": (w.rank, w.size, w.main)}
        seen["sum"] = world.all_reduce([w.rank + 1, 10.0]).tolist()  # [1+2, 10+10]
        seen["max"] = world.all_reduce([w.rank * 5.0], "max").tolist()
        seen["gather"] = world.gather({"rank": w.rank})
        seen["broadcast"] = world.broadcast(f"from rank {w.rank}")
        seen["on_main"] = world.on_main(lambda: w.rank + 100)
        try:
            world.on_main(lambda: 1 / 0)
            seen["raised"] = None
        except ZeroDivisionError as err:  # on every rank
            seen["raised"] = str(err)
        # rank 0 has 5 items, rank 1 has 1: both run ceil(5/2) = 3 passes
        seen["splits"] = world.gather(world.even_splits(5 if w.rank == 0 else 1, 2))
        x = torch.tensor([1.0, 2.0, 3.0]) if w.rank == 0 else torch.tensor([10.0])
        seen["normalized"] = world.gather(normalize(x, all_reduce=world.all_reduce).tolist())
        return seen


@pytest.fixture(scope="module")
def two_ranks():
    cfg = OmegaConf.create({"trainer": {"devices": 2, "num_nodes": 1, "accelerator": "cpu"}})
    assert launch.needs_spawn(cfg)
    return launch.spawn("tests.unit.test_parallel.two_rank_checks", cfg)


def test_two_ranks_see_each_other(two_ranks):
    assert two_ranks["world"] == (0, 2, True)
    assert two_ranks["sum"] == [3.0, 20.0]
    assert two_ranks["max"] == [5.0]
    assert two_ranks["gather"] == [{"rank": 0}, {"rank": 1}]
    assert two_ranks["broadcast"] == "from rank 0"
    assert two_ranks["on_main"] == 100
    assert two_ranks["raised"] == "division by zero"


def test_even_splits_pad_the_shorter_rank_with_none(two_ranks):
    assert two_ranks["splits"] == [[slice(0, 2), slice(2, 4), slice(4, 5)], [slice(0, 1), None, None]]


def test_normalize_over_ranks_equals_normalize_of_the_union(two_ranks):
    from sweeps.rl.advantages import normalize

    union = normalize(torch.tensor([1.0, 2.0, 3.0, 10.0])).tolist()  # mean 4, population std sqrt(12.5)
    assert union[0] == pytest.approx((1 - 4) / (math.sqrt(12.5) + 1e-5), abs=1e-6)
    got = two_ranks["normalized"][0] + two_ranks["normalized"][1]
    assert got == pytest.approx(union, abs=1e-6)


def test_one_process_is_the_identity():
    assert world.world() == world.World(0, 1, 0) and world.world().main
    assert world.broadcast("x") == "x" and world.gather(3) == [3]
    assert world.all_reduce([1.5, 2.0]).tolist() == [1.5, 2.0]
    assert world.on_main(lambda a: a + 1, 1) == 2
    assert world.even_splits(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert world.even_splits(0, 4) == []


def test_a_failing_rank_is_one_line_naming_it():
    cfg = OmegaConf.create({"trainer": {"devices": 2, "num_nodes": 1, "accelerator": "cpu"}})
    with pytest.raises(RuntimeError) as err:
        launch.spawn("tests.unit.test_parallel.fail_on_rank_1", cfg)
    assert str(err.value) == "rank 1 of 2 failed: ValueError: bad input seen by rank 1"


def fail_on_rank_1(cfg):
    import os

    if os.environ["RANK"] == "1":
        raise ValueError("bad input seen by rank 1")
    return {}


def test_ranks_and_config_must_agree(monkeypatch):
    cfg = OmegaConf.create({"trainer": {"devices": 2, "num_nodes": 1, "accelerator": "cpu"}})
    for k, v in {
        "TORCHELASTIC_RUN_ID": "x",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "3",
        "GROUP_RANK": "0",
        "LOCAL_WORLD_SIZE": "3",
    }.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(
        ValueError, match=r"trainer.devices x trainer.num_nodes = 2 processes, but torchrun's WORLD_SIZE is 3"
    ):
        launch.cluster_environment(cfg)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    with pytest.raises(ValueError, match=r"trainer.devices=2 but the SLURM job runs 4 tasks per node"):
        launch.cluster_environment(cfg)


def test_several_nodes_need_a_cluster_launcher():
    cfg = OmegaConf.create({"trainer": {"devices": 2, "num_nodes": 2, "accelerator": "cpu"}})
    with pytest.raises(ValueError, match="trainer.num_nodes=2 needs its ranks started on every node"):
        launch.needs_spawn(cfg)
    assert not launch.needs_spawn(OmegaConf.create({"trainer": {"devices": 1, "num_nodes": 1}}))


@pytest.mark.parametrize(
    "tasks,nodes,devices,num_nodes,accel,gpus,message",
    [
        (2, 1, 2, 1, "cpu", None, None),  # one task per device
        (1, 1, 2, 1, "cpu", None, None),  # the job starts its ranks
        (8, 2, 8, 2, "gpu", 8, None),
        (3, 1, 2, 1, "cpu", None, "set hydra.launcher.tasks_per_node=2 hydra.launcher.nodes=1"),
        (8, 1, 8, 2, "gpu", 8, "trainer.num_nodes=2 but the launcher runs tasks_per_node=8 x nodes=1"),
        (1, 1, 8, 1, "gpu", 1, "set hydra.launcher.gpus_per_node=8"),
    ],
)
def test_launcher_resources_are_checked_against_each_job(tasks, nodes, devices, num_nodes, accel, gpus, message):
    from sweeps.launching import LaunchError, SubmitUnfinished

    class Launcher(SubmitUnfinished):
        params = {"tasks_per_node": tasks, "nodes": nodes, "gpus_per_node": gpus}

    cfg = OmegaConf.create({"trainer": {"devices": devices, "num_nodes": num_nodes, "accelerator": accel}})
    if message is None:
        Launcher().check_resources(cfg)
    else:
        with pytest.raises(LaunchError, match=message.replace(".", r"\.")):
            Launcher().check_resources(cfg)


# --- configs ------------------------------------------------------------------------------
def test_strategy_configs_build_lightnings_strategies():
    from lightning.pytorch.strategies import DDPStrategy

    from sweeps.parallel import strategies
    from sweeps.parallel.fsdp import FSDPStrategy

    assert strategies.build(compose([])) == "auto"
    assert isinstance(strategies.build(compose(["trainer/strategy=ddp"])), DDPStrategy)
    fsdp = strategies.build(compose(["trainer=gpu", "trainer/strategy=fsdp"]))
    assert isinstance(fsdp, FSDPStrategy)
    assert fsdp.mp_policy.param_dtype == torch.bfloat16 and fsdp.mp_policy.reduce_dtype == torch.float32
    cpu = strategies.build(compose(["trainer/strategy=fsdp"]))  # 32-true: no casts
    assert cpu.mp_policy.param_dtype is None and cpu.mp_policy.reduce_dtype is None
    assert compose(["trainer/strategy=deepspeed_stage_2"]).trainer.strategy.stage == 2


@pytest.mark.parametrize(
    "override,message",
    [
        ("trainer.devices=0", "trainer.devices must be > 0"),
        (
            "trainer.devices=3",
            "trainer.batch_size=64 does not split evenly over trainer.devices x trainer.num_nodes = 3",
        ),
        ("trainer.num_nodes=0", "trainer.num_nodes must be > 0"),
    ],
)
def test_process_counts_are_checked_naming_the_key(override, message):
    from sweeps.schema import ConfigError, validate

    with pytest.raises(ConfigError) as err:
        validate(compose([override]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_rl_prompts_must_split_into_whole_groups_per_rank():
    from sweeps.schema import ConfigError, validate

    cfg = compose(
        [
            "algo=grpo",
            "trainer=rl_cpu",
            "trainer.batch_size=24",
            "algo.group_size=8",
            "trainer.devices=2",
            "init.step=10",
        ]
    )
    with pytest.raises(ConfigError, match="3 prompts per RL step do not split evenly over 2 processes"):
        validate(cfg)


def test_processes_strategy_and_checkpointing_do_not_change_a_jobs_identity():
    from sweeps.launching import job_signature

    def sig(*overrides):
        return job_signature(compose(list(overrides)))

    base = sig()
    assert sig("trainer.devices=2", "trainer/strategy=fsdp", "model.gradient_checkpointing=true") == base
    assert sig("trainer.num_nodes=2", "trainer.batch_size=64") == base
    assert sig("algo.optimizer.lr=0.5") != base


def test_resume_state_reads_both_layouts(tmp_path):
    from sweeps.modules.callbacks import resume_state
    from sweeps.runs import Run

    run = Run(tmp_path)
    assert resume_state(run) is None
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "last.ckpt").write_text("x")  # written before the sharded layout
    (tmp_path / "resume" / "state.json").write_text(json.dumps({"step": 4}))
    assert resume_state(run) == (4, tmp_path / "resume" / "last.ckpt")
    (tmp_path / "resume" / "step=000008.ckpt").mkdir()  # a sharded state is a directory
    (tmp_path / "resume" / "state.json").write_text(json.dumps({"step": 8, "path": "step=000008.ckpt"}))
    assert resume_state(run) == (8, tmp_path / "resume" / "step=000008.ckpt")
    (tmp_path / "resume" / "state.json").write_text(json.dumps({"step": 12, "path": "step=000012.ckpt"}))
    assert resume_state(run) is None  # named but missing: start over


@pytest.mark.parametrize(
    "precision,param,reduce",
    [
        ("bf16-mixed", torch.bfloat16, torch.float32),
        ("16-mixed", torch.float16, torch.float32),
        ("32-true", None, None),
        ("bf16-true", None, None),
    ],
)
def test_fsdp_mixed_precision_follows_the_trainer_precision(precision, param, reduce):
    from sweeps.parallel.fsdp import mixed_precision

    policy = mixed_precision(precision)
    assert policy.param_dtype == param and policy.reduce_dtype == reduce


def test_a_sharded_state_resumes_only_under_its_strategy(tmp_path):
    from sweeps.modules.callbacks import check_resume_format
    from sweeps.runs import Run

    class FSDPStrategy:
        pass

    class DDPStrategy:
        pass

    run = Run(tmp_path)
    (tmp_path / "resume" / "step=000004.ckpt").mkdir(parents=True)
    (tmp_path / "resume" / "state.json").write_text(
        json.dumps({"step": 4, "path": "step=000004.ckpt", "strategy": "FSDPStrategy"})
    )
    shards = tmp_path / "resume" / "step=000004.ckpt"
    import pickle

    (shards / ".metadata").write_bytes(pickle.dumps({"planner_data": {}}))  # passes the allow-list
    check_resume_format(run, shards, FSDPStrategy())  # any number of processes
    with pytest.raises(ValueError, match="sharded trainer state written by FSDPStrategy; this job runs DDPStrategy"):
        check_resume_format(run, shards, DDPStrategy())
    (tmp_path / "resume" / "state.json").write_text(
        json.dumps({"step": 4, "path": "x.ckpt", "strategy": "DDPStrategy"})
    )
    (tmp_path / "resume" / "x.ckpt").write_text("one file")
    check_resume_format(run, tmp_path / "resume" / "x.ckpt", FSDPStrategy())  # one-file states load anywhere
