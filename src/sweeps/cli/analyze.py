"""``sweeps-analyze``: peaks, recovery windows and rotation↔OOD correlations with bootstrap CIs.

    sweeps-analyze study=tiny_smoke paths.output_dir=outputs
    sweeps-analyze study=outputs/tiny_smoke analysis.method=BCa analysis.n_resamples=1999

Reads a study's run directories (never trains) and writes CSV tables and PNG figures into
``<output_dir>/<study>/analysis/``, the static report ``<output_dir>/<study>/report/index.html``,
and mirrors them into the study's MLflow parent run (:mod:`sweeps.analysis.stage`).
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from sweeps import CONF_DIR
from sweeps.analysis.stage import analyze  # registers analyze_schema
from sweeps.cli import one_line_errors

log = logging.getLogger("sweeps.analyze")


@hydra.main(config_path=CONF_DIR, config_name="analyze", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return one_line_errors(analyze, cfg, log=log)


if __name__ == "__main__":
    main()
