"""One process per device: where a multi-process job's ranks come from.

A job asks for ``trainer.devices`` processes on each of ``trainer.num_nodes`` nodes. The ranks
come from one of three places, found in this order:

1. **torchrun / torch elastic** (``TORCHELASTIC_RUN_ID`` set): each process is one rank; this
   is also how :func:`spawn` starts them.
2. **A multi-task SLURM job** (``hydra/launcher=slurm_8gpu``: ``tasks_per_node`` = devices,
   ``nodes`` = num_nodes): srun starts one task per device and submitit runs the job in each;
   Lightning's ``SLURMEnvironment`` reads the ranks from SLURM's variables.
3. **Nothing** (a plain ``sweeps-train``, a local submitit job, a one-task SLURM job): the job
   process becomes a torch elastic agent that starts ``trainer.devices`` ranks on this node
   (:func:`spawn`), waits for them and returns rank 0's result. A rank that fails stops the
   others; the agent raises one line naming the rank and its error.

:func:`ranks` joins the process group before anything else happens (the run directory's claim
is decided on rank 0 and broadcast), and hands the same cluster environment to Lightning, so
the two never disagree about who is who.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.parallel import world

log = logging.getLogger(__name__)


def wanted(cfg: DictConfig) -> int:
    """Processes the job's config asks for."""
    return int(cfg.trainer.devices) * int(cfg.trainer.num_nodes)


def _multi_process_env() -> bool:
    """torchrun's or a multi-task SLURM job's variables are set (read without importing Lightning)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or (
        int(os.environ.get("SLURM_NTASKS", "1")) > 1 and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    )


def cluster_environment(cfg: DictConfig) -> Any:
    """Lightning's cluster environment of this process when it is one rank of a multi-process
    job, else None. Raises a one-line ValueError when the job's ranks and its config disagree."""
    if not _multi_process_env():
        return None
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        env: Any = TorchElasticEnvironment()
        where = "torchrun's WORLD_SIZE"
    elif int(os.environ.get("SLURM_NTASKS", "1")) > 1 and os.environ.get("SLURM_JOB_NAME") not in (
        "bash",
        "interactive",
    ):
        env = SLURMEnvironment(auto_requeue=False)  # submitit requeues preempted jobs (USR2), not Lightning
        where = "SLURM's ntasks (hydra.launcher.tasks_per_node x nodes)"
        per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", "0").split("(")[0] or 0)
        if per_node and per_node != int(cfg.trainer.devices):
            raise ValueError(
                f"trainer.devices={cfg.trainer.devices} but the SLURM job runs {per_node} tasks per node: "
                f"set trainer.devices={per_node} or hydra.launcher.tasks_per_node={cfg.trainer.devices}"
            )
    else:
        return None
    if env.world_size() != wanted(cfg):
        raise ValueError(
            f"trainer.devices x trainer.num_nodes = {wanted(cfg)} processes, but {where} is "
            f"{env.world_size()}: make them equal"
        )
    return env


def needs_spawn(cfg: DictConfig) -> bool:
    """True when the job wants several processes and nothing has started them."""
    if wanted(cfg) == 1 or cluster_environment(cfg) is not None:
        return False
    if int(cfg.trainer.num_nodes) > 1:
        raise ValueError(
            f"trainer.num_nodes={cfg.trainer.num_nodes} needs its ranks started on every node: launch "
            "through a SLURM launcher with nodes=num_nodes and tasks_per_node=devices "
            "(hydra/launcher=slurm_2x8gpu), or with torchrun --nnodes"
        )
    return True


def backend(cfg: DictConfig) -> str:
    return "nccl" if cfg.trainer.accelerator in ("gpu", "cuda") else "gloo"


@contextlib.contextmanager
def ranks(cfg: DictConfig) -> Iterator[Any]:
    """Join the job's process group for the duration (a no-op for a one-process job); yields
    the cluster environment (None for one process)."""
    env = cluster_environment(cfg)
    if env is None:
        yield None
        return
    import torch

    if backend(cfg) == "nccl":
        torch.cuda.set_device(env.local_rank())
    world.init(env.global_rank(), env.world_size(), env.main_address, env.main_port, backend(cfg))
    log.info(
        "rank %d of %d (local rank %d, %s, %s)",
        env.global_rank(),
        env.world_size(),
        env.local_rank(),
        type(env).__name__,
        backend(cfg),
    )
    try:
        yield env
    finally:
        world.shutdown()


def spawn(entry: str, cfg: DictConfig) -> Any:
    """Run ``entry(cfg)`` (a dotted path) in ``trainer.devices`` local ranks under a torch
    elastic agent; returns rank 0's result. A failed rank becomes one RuntimeError."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from sweeps.cli import Preempted

    n = int(cfg.trainer.devices)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=n,
        run_id=f"sweeps-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    log.info("starting %d ranks on this node (torch elastic)", n)
    container = OmegaConf.to_container(cfg, resolve=True)
    try:
        results = elastic_launch(config, _rank_main)(entry, container)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode == Preempted.exit_code or "Preempted" in _one_line(failure):
            raise Preempted(f"rank {rank} of {n}: {_one_line(failure)}") from None
        raise RuntimeError(f"rank {rank} of {n} failed: {_one_line(failure)}") from None
    except SignalException as err:
        # the agent got the signal and passed it on to the ranks (SIGKILL after 30 s): each saved
        # its step's trainer state if it reached the end of the step by then
        raise Preempted(
            f"signal {err.sigval} to the job: its {n} ranks were stopped; re-run the same "
            "command (or requeue) to resume from the last saved trainer state"
        ) from None
    return results[0]


def _one_line(failure: Any) -> str:
    """The failed rank's error message (from its error file), else its exit code."""
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    message = str(message or "").strip()
    if not message or message.startswith("To enable traceback"):
        return f"exit code {failure.exitcode}; its log above has the traceback"
    return message.splitlines()[0]


def _rank_main(entry: str, container: dict[str, Any]) -> Any:
    """One rank started by :func:`spawn`: the job's logging, then ``entry(cfg)``."""
    from hydra.utils import get_method
    from torch.distributed.elastic.multiprocessing.errors import record

    rank = os.environ.get("RANK", "?")
    logging.basicConfig(
        level=logging.INFO, force=True, format=f"[%(asctime)s][rank {rank}][%(name)s][%(levelname)s] - %(message)s"
    )
    import sweeps.schema  # noqa: F401  (registers the resolvers the entry point expects)

    return record(get_method(entry))(OmegaConf.create(container))
