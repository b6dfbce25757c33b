"""``sweeps-train``: one job of a grid (SFT now; RL algos plug in through ``algo.job``).

    sweeps-train algo=sft model=tiny task=general_points trainer=smoke seed=0
    sweeps-train -m hydra/launcher=local seed=0,1,2
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeps import CONF_DIR, schema  # schema registers the structured-config schemas
from sweeps.runs import Run, run_dir, signature

log = logging.getLogger("sweeps.train")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run (or skip, or resume) the job ``cfg`` describes; returns its summary metrics."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(cfg.paths.output_dir).expanduser().resolve())
    task = schema.validate(cfg)
    init = "base" if cfg.algo.name == "sft" else _rl_init_name(cfg)
    run = Run(run_dir(cfg.paths.output_dir, cfg.study, cfg.algo.name, cfg.model.name, task.name, init, cfg.seed))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    state = run.claim(signature(resolved), OmegaConf.to_yaml(cfg, resolve=True))
    if state == "skip":
        log.info("skip: %s is DONE with the same signature", run.path)
        import json

        return json.loads((run.path / "DONE").read_text())
    log.info("%s: %s", state, run.path)
    return get_method(cfg.algo.job)(cfg, run, task)


def _rl_init_name(cfg: DictConfig) -> str:
    from sweeps.jobs.rl import init_name

    return init_name(cfg)


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    try:
        summary = train(cfg)
    except (schema.ConfigError, ValueError, RuntimeError, FileNotFoundError, FloatingPointError) as err:
        log.error("%s: %s", type(err).__name__, err)
        raise SystemExit(f"error: {err}") from None
    return {k: v for k, v in summary.items() if isinstance(v, (int, float))}


if __name__ == "__main__":
    main()
