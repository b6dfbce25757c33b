"""``sweeps-spectral``: weight-space analysis of a study's checkpoints (PAPER.md section 6).

    sweeps-spectral model=tiny task=general_points_compact seed=0 paths.output_dir=outputs
    sweeps-spectral -m study=tiny_sft model=tiny task=general_points_compact seed=0,1,2
    sweeps-spectral ... spectral.references=[base,previous] spectral.k=32 spectral.method=full

Reads the finished run directories of ``spectral.stages`` (never trains) and writes, per run,
``spectral/<reference>/step=NNNNNN.csv`` and ``spectral/summary.csv``, mirrored into the run's
MLflow run (see :mod:`sweeps.spectral.stage`). Tables that exist are skipped. LoRA runs are
analysed on their merged weights, which is what their checkpoints hold.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from sweeps import CONF_DIR, schema
from sweeps.cli import absolute_output_dir, one_line_errors
from sweeps.spectral import config  # noqa: F401  (registers spectral_schema)

log = logging.getLogger("sweeps.spectral")


def spectral(cfg: DictConfig) -> dict[str, Any]:
    """Analyse the study's runs for the config's model, task and seed; returns counts and time."""
    from sweeps.spectral.stage import run_stage

    absolute_output_dir(cfg)
    schema.validate(cfg)
    summary = run_stage(cfg)
    log.info("spectral: %s", summary)
    return summary


@hydra.main(config_path=CONF_DIR, config_name="spectral", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return one_line_errors(spectral, cfg, log=log)


if __name__ == "__main__":
    main()
