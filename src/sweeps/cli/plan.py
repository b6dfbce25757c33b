"""``sweeps-plan``: the memory a job needs per GPU, before anything is loaded or launched.

    sweeps-plan model=qwen2_5_7b trainer=gpu trainer.devices=8 trainer/strategy=fsdp memory.gpu_gib=80
    sweeps-plan algo=grpo model=qwen2_5_7b trainer=gpu init.step=100 memory.gpu_gib=141 memory.seq_len=1024

Takes the same overrides as ``sweeps-train``, builds the model on the meta device, prints the
plan term by term (:mod:`sweeps.parallel.memory`) and exits 1 with one line naming the knob to
change when it does not fit.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from sweeps import CONF_DIR, schema
from sweeps.cli import one_line_errors

log = logging.getLogger("sweeps.plan")


def memory_plan(cfg: DictConfig) -> dict[str, float]:
    from sweeps.parallel import memory

    task = schema.validate(cfg)
    p = memory.for_job(cfg, task)
    print(p.table(), flush=True)
    memory.check(
        p, memory.sharding(cfg.trainer.strategy)[0], bool(cfg.model.gradient_checkpointing), str(cfg.model.dtype)
    )
    return {"total_gib": p.total / memory.GIB}


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return one_line_errors(memory_plan, cfg, log=log)


if __name__ == "__main__":
    main()
