"""``sweeps-study``: a whole study as one command, the same on a laptop and on SLURM.

    sweeps-study experiment=tiny_smoke                                # submitit, local processes
    sweeps-study experiment=tiny_smoke hydra/launcher=slurm_local      # the same on SLURM

The experiment's ``plan`` names the grid; the driver (:mod:`sweeps.driver`) runs its stages in
order (SFT -> RL from the chosen checkpoints -> spectral -> analysis), each as one Hydra multirun
through the launcher chosen here. Re-running a finished study costs seconds.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweeps import CONF_DIR
from sweeps.cli import one_line_errors
from sweeps.driver import run_study

log = logging.getLogger("sweeps.study")


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    hc = HydraConfig.get()
    launcher = hc.runtime.choices.get("hydra/launcher") or "local"
    launcher = "local" if launcher == "basic" else launcher
    extra = [o for o in hc.overrides.task if not o.startswith(("hydra/launcher=", "plan."))]
    if cfg.get("plan") is None:
        raise SystemExit("error: this config has no plan: pick a study with experiment=<name> (conf/experiment/)")
    return one_line_errors(run_study, cfg, launcher, extra, log=log)


if __name__ == "__main__":
    main()
