"""The SFT stage: train on the task's ID split, checkpoint and evaluate ID/OOD along the way."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from sweeps.jobs import common
from sweeps.runs import Run, rotation_variant, with_variant
from sweeps.threads import set_threads


def semantic_config(cfg: DictConfig, resolved: dict[str, Any]) -> dict[str, Any]:
    """The config as the signature sees it: the rotation regulariser's settings count only when
    it is on (λ > 0); with λ = 0 the job is plain SFT, the same job (directory and signature) as
    before the option existed."""
    algo = resolved.get("algo")
    if (
        isinstance(algo, dict)
        and isinstance(algo.get("rotation_reg"), dict)
        and not rotation_variant(algo["rotation_reg"])
    ):
        return {**resolved, "algo": {k: v for k, v in algo.items() if k != "rotation_reg"}}
    return resolved


def init_name(cfg: DictConfig) -> str:
    """The run directory's init axis: ``base``, plus the regulariser's setting when it is on."""
    return with_variant("base", rotation_variant(cfg.algo.get("rotation_reg")))


def run(cfg: DictConfig, run: Run, task: Any) -> dict[str, Any]:
    set_threads(cfg.trainer.threads)
    from sweeps.models.build import build
    from sweeps.modules.callbacks import Recorder
    from sweeps.modules.data import SFTStream
    from sweeps.modules.sft import SFTModule

    common.seed_everything(cfg.seed)
    tracker = common.start_tracker(cfg, run, stage="sft", init="base")
    resume = common.prepare_resume(run, tracker)
    model, tokenizer = build(cfg.model)
    module = SFTModule(model, cfg.algo, cfg.trainer.max_steps, list(cfg.model.spectral_targets))
    recorder = Recorder(run, tracker)
    callbacks = common.standard_callbacks(cfg, run, task, recorder, tokenizer)
    trainer = common.make_trainer(cfg, callbacks, gradient_clip_val=cfg.algo.max_grad_norm)
    accumulate = cfg.trainer.accumulate
    stream = SFTStream(
        task, tokenizer, cfg.seed, cfg.trainer.batch_size, start_batch=lambda: trainer.global_step * accumulate
    )
    return common.fit_and_finish(trainer, module, stream, resume, run, tracker, recorder)
