"""``sweeps-eval``: score any checkpoint directory on a task's frozen ID/OOD sets.

    # quoted: Hydra's grammar reads '=' in a value
    sweeps-eval "ckpt='outputs/default/sft/tiny/general_points/base/seed=0/ckpt/step=000300'"
    sweeps-eval ckpt=/path/to/hf_model task=determinant eval.temperature=0.7 eval.size=500

Writes eval.json and episodes_<split>.jsonl into ``out`` (default: the checkpoint directory).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from sweeps import CONF_DIR, schema
from sweeps.cli import one_line_errors

log = logging.getLogger("sweeps.eval")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    from sweeps.jobs import common
    from sweeps.models.checkpoint import check_checkpoint_dir, load_checkpoint
    from sweeps.runs import layout
    from sweeps.threads import set_threads

    if not cfg.get("ckpt"):
        raise schema.ConfigError("ckpt is not set: pass ckpt=<checkpoint directory>")
    path = check_checkpoint_dir(cfg.ckpt)
    task = schema.validate(cfg)
    set_threads(cfg.trainer.threads)
    model, tokenizer = load_checkpoint(path, cfg.model.dtype, cfg.model.trust_remote_code)
    step = layout.maybe_step(path.name) or 0
    out = Path(cfg.out) if cfg.get("out") else path
    metrics = common.make_evaluator(cfg, task)(model, tokenizer, step, out_dir=out)
    log.info("%s", json.dumps(metrics, indent=1, sort_keys=True))
    return metrics


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return one_line_errors(evaluate, cfg, log=log)


if __name__ == "__main__":
    main()
