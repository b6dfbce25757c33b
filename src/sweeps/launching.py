"""Hydra submitit launchers that submit only unfinished jobs, and check SLURM partitions first.

Hydra's submitit launchers submit every job of a multirun; a finished job then starts, finds
its ``DONE`` file and exits, which on a cluster still costs a queue slot per job.
:class:`SubmitUnfinished` composes each job's config first, derives its run directory and
signature exactly as ``sweeps-train`` does (:func:`job_identity`), and submits only the jobs
that are not ``DONE`` with the same signature: re-launching a finished grid submits nothing
and takes seconds. A job whose config fails validation, or whose directory holds a run of
another config, stops the whole launch with the job's own one-line error before anything is
submitted. The SLURM launcher also checks that the
partition exists (``sinfo``) and that ``sacct`` answers. The launcher classes themselves are in
``hydra_plugins.sweeps_launchers`` (Hydra accepts launchers only from that package).

Multi-process jobs: a SLURM launcher runs one task per device (``tasks_per_node`` =
``trainer.devices``, ``nodes`` = ``trainer.num_nodes``; Lightning's SLURM environment wires the
ranks), or one task per job that starts its own ranks on its node (``tasks_per_node: 1``,
``nodes: 1``). The local launcher always runs one process per job, which starts its ranks.
Every job's resources are checked against its config before anything is submitted.

Preemption and time limits need nothing more. SLURM sends USR2 before the limit (and
``scancel --signal=USR2`` does the same); submitit then calls the launcher's ``checkpoint``,
which resubmits the same job with the same arguments, and requeues it while ``max_num_timeout``
allows. The requeued job finds its run directory with the same signature and no ``DONE``, and
resumes from the trainer state its last checkpoint saved atomically.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sweeps import schema
from sweeps.cli import USER_ERRORS, absolute_output_dir
from sweeps.runs import DONE_FIX, Run, read_json, run_dir, signature

log = logging.getLogger(__name__)


class LaunchError(SystemExit):
    """A multirun that cannot be launched: exits with status 1 and the message as the one line."""


def job_identity(cfg: DictConfig) -> tuple[Any, Run, str]:
    """The job's (task, run directory, signature); makes ``paths.output_dir`` absolute in ``cfg``.

    ``sweeps-train`` and the launchers both use it, so they agree on where a job lives and
    whether a finished run there is the same job. Raises the one-line validation errors.
    """
    absolute_output_dir(cfg)
    task = schema.validate(cfg)
    # the stage's job module names its init axis (sft: "base", pretrain: "scratch", RL: the SFT step)
    init = job_module(cfg).init_name(cfg)
    run = Run(run_dir(cfg.paths.output_dir, cfg.study, cfg.algo.name, cfg.model.name, task.name, init, cfg.seed))
    return task, run, job_signature(cfg)


def job_module(cfg: DictConfig) -> Any:
    """The module of the stage's job function (``algo.job``)."""
    import importlib

    return importlib.import_module(cfg.algo.job.rsplit(".", 1)[0])


def job_signature(cfg: DictConfig) -> str:
    """The job's signature: the resolved config as its job module's ``semantic_config`` reads it
    (RL: the SFT step a role names; SFT: the rotation regulariser off is plain SFT), so two ways
    of asking for the same job give one signature, hashed without the non-semantic keys."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    semantic = getattr(job_module(cfg), "semantic_config", None)
    return signature(semantic(cfg, resolved) if semantic else resolved)


def check_slurm(partition: str | None) -> None:
    """Fail in one line unless sinfo answers, every partition in ``partition`` (comma-separated)
    exists, and sacct works (submitit follows jobs through it; without it a launch hangs)."""
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        raise LaunchError(f"error: SLURM_CONF={conf} does not exist")
    have = sorted({p.rstrip("*") for p in _slurm_tool("sinfo", "-h", "-o", "%P").split()})
    for p in (partition or "").split(","):
        if p and p not in have:
            raise LaunchError(
                f"error: SLURM partition {p!r} does not exist; partitions here: {', '.join(have) or 'none'}"
            )
    _slurm_tool("sacct", "-o", "JobID", "--parsable2", "-j", "1")


def _slurm_tool(*cmd: str) -> str:
    hint = "on the local test cluster, source the env.sh that scripts/slurm_local.sh start made"
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise LaunchError(
            f"error: {cmd[0]} not found: a SLURM launcher needs the SLURM tools on PATH; {hint}"
        ) from None
    except subprocess.TimeoutExpired:
        raise LaunchError(f"error: {cmd[0]} did not answer in 60 s: is slurmctld up?") from None
    if res.returncode:
        first = (res.stderr.strip().splitlines() or ["no message"])[0]
        raise LaunchError(f"error: {cmd[0]} failed ({first}): submitit needs sinfo and sacct; {hint}")
    return res.stdout


class SubmitUnfinished:
    """Mixin for BaseSubmititLauncher: submit only the jobs not DONE with the same signature."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if not job_overrides and initial_job_idx == 0:  # Hydra would report success having run nothing
            raise LaunchError(
                "error: this multirun expands to no jobs: a swept key has no values (e.g. "
                "seed='range(0,0)'); give every swept key at least one value"
            )
        self.check_cluster()
        if self.config.hydra.job.name != "train":  # other apps (sweeps-spectral) have no run identity
            return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]
        returns: list[JobReturn | None] = [self._finished(list(o)) for o in job_overrides]
        todo = [list(o) for o, r in zip(job_overrides, returns) if r is None]
        log.info("%d of %d jobs already DONE; submitting %d", len(returns) - len(todo), len(returns), len(todo))
        if todo:
            ran = iter(super().launch(todo, initial_job_idx))  # type: ignore[misc]
            returns = [r if r is not None else next(ran) for r in returns]
        return returns  # type: ignore[return-value]

    def check_cluster(self) -> None:
        """Checks made once before anything is submitted (none for local processes)."""

    def check_resources(self, cfg: DictConfig) -> None:
        """One job's processes against the launcher's tasks and nodes (see the module doc)."""
        tasks, nodes = int(self.params.get("tasks_per_node", 1)), int(self.params.get("nodes", 1))  # type: ignore[attr-defined]
        devices, num_nodes = int(cfg.trainer.devices), int(cfg.trainer.num_nodes)
        gpus = self.params.get("gpus_per_node")  # type: ignore[attr-defined]
        if tasks == 1 and nodes == 1 and num_nodes == 1:  # the job starts its own ranks
            if gpus is not None and cfg.trainer.accelerator in ("gpu", "cuda") and int(gpus) < devices:
                raise LaunchError(
                    f"error: trainer.devices={devices} but the launcher gives gpus_per_node={gpus}: "
                    f"set hydra.launcher.gpus_per_node={devices}"
                )
            return
        if (tasks, nodes) != (devices, num_nodes):
            raise LaunchError(
                f"error: trainer.devices={devices} x trainer.num_nodes={num_nodes} but the launcher runs "
                f"tasks_per_node={tasks} x nodes={nodes}: set hydra.launcher.tasks_per_node={devices} "
                f"hydra.launcher.nodes={num_nodes} (one task per device) or tasks_per_node=1 on one node"
            )

    def _finished(self, overrides: list[str]) -> JobReturn | None:
        """A completed JobReturn for a job that is DONE with the same signature, else None."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)  # type: ignore[attr-defined]
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]  # as the job sees it (run_job drops it)
        try:
            _, run, sig = job_identity(cfg)
        except USER_ERRORS as err:  # what sweeps-train reports in one line
            raise LaunchError(f"error: {err}") from None
        self.check_resources(cfg)
        stored = run.stored_signature()
        if stored is not None and stored != sig:  # the job would refuse it: say so before submitting
            raise LaunchError(
                f"error: run directory {run.path} holds a run with signature {stored}, this config has "
                f"{sig}: use another paths.output_dir or study name, or delete the directory"
            )
        if not (run.done and stored == sig):
            return None
        log.info("skip: %s is DONE with the same signature", run.path)
        try:
            summary = read_json(run.path / "DONE", DONE_FIX)
        except ValueError as err:
            raise LaunchError(f"error: {err}") from None
        value = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        return JobReturn(
            overrides=overrides,
            cfg=cfg,
            working_dir=str(run.path),
            task_name="train",
            status=JobStatus.COMPLETED,
            _return_value=value,
        )
