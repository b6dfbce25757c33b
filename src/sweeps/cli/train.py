"""``sweeps-train``: one job of a grid; ``algo`` picks the stage (sft, grpo, reinforce, ppo).

sweeps-train algo=sft model=tiny task=general_points trainer=smoke seed=0
sweeps-train -m hydra/launcher=local seed=0,1,2
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig

from sweeps import CONF_DIR, schema, secrets  # noqa: F401  (schema registers the structured-config schemas)
from sweeps.cli import one_line_errors
from sweeps.launching import job_identity
from sweeps.parallel import launch, memory, world

log = logging.getLogger("sweeps.train")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run (or skip, or resume) the job ``cfg`` describes; returns its summary metrics.

    With ``trainer.devices x trainer.num_nodes > 1`` every rank runs this function; rank 0
    claims the run directory and the others follow its decision. When nothing has started the
    ranks yet, this process starts them on this node and returns rank 0's summary.
    """
    if launch.needs_spawn(cfg):
        return launch.spawn("sweeps.cli.train.train", cfg)
    with launch.ranks(cfg):
        task, run, sig = job_identity(cfg)
        world.on_main(check_writable, run.path)
        state = world.on_main(run.claim, sig, secrets.config_yaml(cfg))
        if state == "skip":
            log.info("skip: %s is DONE with the same signature", run.path)
            return world.on_main(lambda: json.loads((run.path / "DONE").read_text()))
        if world.world().main:
            log.info("%s: %s", state, run.path)
        try:
            world.on_main(memory.preflight, cfg, task)
            return get_method(cfg.algo.job)(cfg, run, task)
        except BaseException as err:
            if world.world().main:
                run.mark_failed(err)
            raise


def check_writable(run_path: Path) -> None:
    """Fail before anything starts when the run directory cannot be created or written
    (read-only or full file system, a file where a folder should be)."""
    import tempfile

    try:
        run_path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"paths.output_dir: cannot write the run directory {run_path} ({err.strerror or err}): "
            "choose a writable paths.output_dir"
        ) from None


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    summary = one_line_errors(train, cfg, log=log)
    return {k: v for k, v in summary.items() if isinstance(v, (int, float))}


if __name__ == "__main__":
    main()
