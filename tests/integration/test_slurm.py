"""Multiruns through hydra/launcher=slurm_local on a real single-node SLURM (slow).

The module starts the cluster with scripts/slurm_local.sh (installing the Debian packages if
needed) and always stops it. It checks a 2-seed grid end to end, that a re-launch of a finished
grid submits nothing, that SLURM and local processes give the same metrics, that a preempted
job (USR2) is requeued and resumes to the same result, and that an unknown partition fails in
one line before anything is submitted. A last test needs no cluster: the launcher configs name
a launcher Hydra discovers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
BIN = Path(sys.executable).parent
GRID = ["algo=sft", "model=tiny", "task=general_points_compact", "trainer=smoke", "eval.size=8"]
SBIN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def slurm():
    """The environment (SLURM_CONF, PATH from env.sh) of a cluster started here and stopped after.

    The cluster lives in $SLURM_BASE if set (.ci/run sets it, to stop it whatever happens),
    else in a new temp dir. A cluster of slurm_local.sh already running is used, not stopped.
    """
    installed = all(shutil.which(x, path=SBIN) for x in ("slurmctld", "slurmd", "sinfo", "munged"))
    if not installed and (shutil.which("apt-get", path=SBIN) is None or os.geteuid() != 0):
        pytest.skip("SLURM is not installed and scripts/slurm_local.sh cannot install it (needs root and apt-get)")
    res = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    base = res.stdout.strip().splitlines()[-1]
    try:
        dump = subprocess.run(["bash", "-c", f'source "{base}/env.sh" && env -0'], capture_output=True, check=True)
        yield dict(kv.split("=", 1) for kv in dump.stdout.decode().split("\0") if "=" in kv)
    finally:
        if "already running" not in res.stderr:
            subprocess.run([str(SCRIPT), "stop", base], timeout=300)


def launch(env: dict, out: Path, *args: str, launcher: str = "slurm_local") -> subprocess.CompletedProcess:
    cmd = [str(BIN / "sweeps-train"), "-m", f"hydra/launcher={launcher}", *GRID, *args, f"paths.output_dir={out}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def n_jobs(env: dict) -> int:
    """Every job the cluster knows of, finished ones included (MinJobAge keeps them)."""
    res = subprocess.run(
        ["squeue", "-h", "-a", "--states=all", "-o", "%i"], capture_output=True, text=True, env=env, check=True
    )
    return len(res.stdout.split())


def run_path(out: Path, seed: int) -> Path:
    return out / "default" / "sft" / "tiny" / "general_points_compact" / "base" / f"seed={seed}"


def values(run: Path) -> list[dict]:
    """The train/ and eval/ metrics of a run, record by record."""
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k == "step" or k.startswith(("train/", "eval/"))} for r in recs]


@pytest.fixture(scope="module")
def grid(slurm, tmp_path_factory):
    out = tmp_path_factory.mktemp("slurm_grid")
    res = launch(slurm, out, "seed=0,1")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_grid_runs_as_a_job_array_and_relaunch_submits_nothing(slurm, grid):
    assert all((run_path(grid, s) / "DONE").is_file() for s in (0, 1))
    folders = sorted(p.name for p in grid.glob(".hydra/*/multirun_*/.submitit/[0-9]*_*"))
    assert [f.split("_")[1] for f in folders] == ["0", "1"]  # one array, two tasks
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{grid}/mlflow.db")
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.tags["sweeps.seed"] for r in found) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in found)
    before = n_jobs(slurm)
    res = launch(slurm, grid, "seed=0,1")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 of 2 jobs already DONE; submitting 0" in res.stdout + res.stderr
    assert n_jobs(slurm) == before


def test_local_launcher_gives_the_same_metrics(grid, tmp_path):
    res = launch(os.environ.copy(), tmp_path, "seed=0,1", launcher="local")
    assert res.returncode == 0, res.stderr[-3000:]
    for s in (0, 1):
        assert values(run_path(tmp_path, s)) == values(run_path(grid, s))


def job_log(out: Path, job_id: str) -> str:
    return "".join(
        p.read_text(errors="replace") for p in sorted(out.glob(f".hydra/*/multirun_*/.submitit/{job_id}/*_log.*"))
    )


def preempt(env: dict, out: Path) -> tuple[bool, str]:
    """Launch one longer job, send it USR2 once it saved a step; (requeued and finished, job log)."""
    run = run_path(out, 0)
    cmd = [
        str(BIN / "sweeps-train"),
        "-m",
        "hydra/launcher=slurm_local",
        *GRID,
        "trainer.max_steps=40",
        "trainer.save_every=5",
        "tracking=none",
        "seed=0",
        f"paths.output_dir={out}",
    ]
    out.mkdir(parents=True)
    with open(out / "launch.log", "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while not (run / "resume" / "state.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    folders = [p.name for p in out.glob(".hydra/*/multirun_*/.submitit/*") if p.name.isdigit()]
    assert len(folders) == 1 and (run / "resume" / "state.json").exists(), (out / "launch.log").read_text()[-2000:]
    job = folders[0]  # submitit's folder is named by the job id
    subprocess.run(["scancel", "--signal=USR2", job], check=True, env=env)
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    log = job_log(out, job)
    ok = rc == 0 and "Requeued job" in log and log.count("Starting with JobEnvironment") == 2
    if not ok:
        subprocess.run(["scancel", job], env=env)
    return ok, log + (out / "launch.log").read_text()


def test_preempted_job_is_requeued_and_resumes_to_the_same_result(slurm, tmp_path):
    ref = tmp_path / "ref"
    res = subprocess.run(
        [
            str(BIN / "sweeps-train"),
            *GRID,
            "trainer.max_steps=40",
            "trainer.save_every=5",
            "tracking=none",
            "seed=0",
            f"paths.output_dir={ref}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ok, log = preempt(slurm, tmp_path / "try1")
    out = tmp_path / "try1"
    if not ok:  # submitit's requeue call loses a race now and then (../shared/SLURM.md): once more
        warnings.warn(f"preemption try 1 did not requeue, retrying; log tail: {log[-1500:]}", stacklevel=2)
        out = tmp_path / "try2"
        ok, log = preempt(slurm, out)
    assert ok, log[-4000:]
    run = run_path(out, 0)
    assert (run / "DONE").is_file()
    resumed = [line for line in log.splitlines() if "resuming" in line]
    assert resumed and int(resumed[0].rsplit("from step", 1)[1]) % 5 == 0, resumed
    assert (run / "metrics.jsonl").read_text() == (run_path(ref, 0) / "metrics.jsonl").read_text()


def test_sigterm_on_slurm_saves_the_step_and_the_relaunch_resumes(slurm, tmp_path):
    """SLURM's SIGTERM (scancel, preemption) reaches the job's task: it saves the trainer state of
    the step in progress and exits; launching the same grid again resumes it to the result of an
    uninterrupted run."""
    args = [*GRID, "trainer.max_steps=24", "trainer.save_every=8", "tracking=none", "seed=0"]
    ref = tmp_path / "ref"
    res = subprocess.run(
        [str(BIN / "sweeps-train"), *args, f"paths.output_dir={ref}"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "term"
    run = run_path(out, 0)
    cmd = [str(BIN / "sweeps-train"), "-m", "hydra/launcher=slurm_local", *args, f"paths.output_dir={out}"]
    out.mkdir(parents=True)
    with open(out / "launch.log", "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=slurm)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
        if '"step": 10,' in text:
            break
        time.sleep(0.05)
    job = next(p.name for p in out.glob(".hydra/*/multirun_*/.submitit/*") if p.name.isdigit())
    subprocess.run(["scancel", "--signal=TERM", job], check=True, env=slurm)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    log = job_log(out, job)
    step = json.loads((run / "resume" / "state.json").read_text())["step"]
    assert 10 <= step < 16 and not (run / "DONE").exists(), log[-3000:]
    assert f"SIGTERM: stopped at step {step} with its trainer state saved" in log, log[-3000:]
    res = launch(slurm, out, "trainer.max_steps=24", "trainer.save_every=8", "tracking=none", "seed=0")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run / "DONE").is_file()
    assert values(run) == values(run_path(ref, 0))


def test_two_task_job_runs_one_rank_per_task_and_matches_one_process(slurm, grid, tmp_path):
    """tasks_per_node=2 with trainer.devices=2: srun starts two tasks, Lightning's SLURM
    environment makes them ranks 0 and 1 of one DDP job; rank 0 writes; same curve as one process."""
    two = ["seed=0", "trainer.devices=2", "trainer/strategy=ddp", "hydra.launcher.tasks_per_node=2"]
    res = launch(slurm, tmp_path, *two)
    assert res.returncode == 0, res.stderr[-3000:]
    run = run_path(tmp_path, 0)
    assert (run / "DONE").is_file()
    job = next(p.name for p in tmp_path.glob(".hydra/*/multirun_*/.submitit/*") if p.name.isdigit())
    logs = {
        rank: "".join(
            p.read_text(errors="replace")
            for p in tmp_path.glob(f".hydra/*/multirun_*/.submitit/{job}/{job}_{rank}_log.*")
        )
        for rank in (0, 1)
    }
    assert "rank 0 of 2 (local rank 0, SLURMEnvironment, gloo)" in logs[0]
    assert "rank 1 of 2 (local rank 1, SLURMEnvironment, gloo)" in logs[1]
    one, both = values(run_path(grid, 0)), values(run)
    assert [r["step"] for r in both] == [r["step"] for r in one]  # every record once
    for a, b in zip(one, both):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-7)
    before = n_jobs(slurm)
    res = launch(slurm, tmp_path, *two)  # finished: nothing submitted
    assert res.returncode == 0 and "1 of 1 jobs already DONE; submitting 0" in res.stdout + res.stderr
    res = launch(slurm, tmp_path / "bad", "seed=0", "trainer.devices=2", "hydra.launcher.tasks_per_node=3")
    assert res.returncode != 0 and n_jobs(slurm) == before
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("error: trainer.devices=2 x trainer.num_nodes=1 but the launcher runs tasks_per_node=3 x nodes=1")
    )


def test_unknown_partition_fails_in_one_line_before_submitting(slurm, tmp_path):
    before = n_jobs(slurm)
    res = launch(slurm, tmp_path, "seed=0,1", "hydra.launcher.partition=nope")
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1] == "error: SLURM partition 'nope' does not exist; partitions here: debug"
    assert n_jobs(slurm) == before
    assert not (tmp_path / "default").exists()


def test_launcher_configs_name_a_discovered_plugin(monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    import sweeps.schema  # noqa: F401  (registers the schemas)

    monkeypatch.setenv("SWEEPS_SLURM_PARTITION", "a100")
    launchers = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        gpu = compose("train", ["hydra/launcher=slurm_1gpu"], return_hydra_config=True).hydra.launcher
        local = compose("train", ["hydra/launcher=slurm_local"], return_hydra_config=True).hydra.launcher
    assert gpu.partition == "a100" and gpu.gpus_per_node == 1 and gpu.timeout_min == 240
    assert local.partition == "debug" and local.timeout_min >= 5
    assert gpu.max_num_timeout == local.max_num_timeout == 3
    assert gpu._target_ in launchers and local._target_ in launchers
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        eight = compose("train", ["hydra/launcher=slurm_8gpu"], return_hydra_config=True).hydra.launcher
        multi = compose("train", ["hydra/launcher=slurm_2x8gpu"], return_hydra_config=True).hydra.launcher
    assert (eight.nodes, eight.tasks_per_node, eight.gpus_per_node) == (1, 8, 8)
    assert (multi.nodes, multi.tasks_per_node, multi.gpus_per_node, multi.partition) == (2, 8, 8, "a100")
    assert eight._target_ in launchers and multi._target_ in launchers


def test_tiny_study_on_slurm_has_a_parent_and_children_and_relaunch_submits_nothing(slurm, tmp_path):
    """sweeps-study on SLURM: SFT (2 seeds, checkpoints 3 and 6), then GRPO from each checkpoint."""
    from mlflow.tracking import MlflowClient

    cmd = [
        str(BIN / "sweeps-study"),
        "experiment=tiny_smoke",
        "hydra/launcher=slurm_local",
        "plan.spectral.enabled=false",
        "plan.analysis.enabled=false",
        f"paths.output_dir={tmp_path}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=slurm)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list(tmp_path.glob("tiny_smoke/*/tiny/general_points_compact/*/seed=*/DONE"))) == 6
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny_smoke").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 6
    assert sorted((r.data.tags["sweeps.stage"], r.data.tags["sweeps.seed"]) for r in children) == [
        ("grpo", "0"),
        ("grpo", "0"),
        ("grpo", "1"),
        ("grpo", "1"),
        ("sft", "0"),
        ("sft", "1"),
    ]
    before = n_jobs(slurm)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=slurm)
    assert res.returncode == 0, res.stderr[-3000:]
    assert n_jobs(slurm) == before  # the second launch submitted no job at all
