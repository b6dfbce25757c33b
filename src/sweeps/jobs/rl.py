"""The RL stage: start from an SFT checkpoint located by the grid axes, train on the ID split.

The start checkpoint is ``<output_dir>/<init.sft_study or study>/sft/<model>/<task>/base/
seed=<seed>/ckpt/step=<init.step>`` (or the step that ``init.role`` names). Checkpoints,
evaluation, metrics, resume and MLflow work exactly as for SFT.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeps.jobs import common
from sweeps.parallel import strategies
from sweeps.runs import Run, layout
from sweeps.threads import set_threads


def sft_run_dir(cfg: DictConfig) -> Path:
    study = cfg.init.sft_study or cfg.study
    return layout.run_dir(cfg.paths.output_dir, study, layout.SFT, cfg.model.name, cfg.task.name, layout.BASE, cfg.seed)


def init_step(cfg: DictConfig) -> int:
    """The SFT step RL starts from: ``init.step``, or the step ``init.role`` resolves to."""
    from sweeps.analysis.roles import resolve

    if (cfg.init.step is None) == (cfg.init.role is None):
        raise ValueError("RL needs exactly one of init.step=<N> or init.role=<ood_peak|id_peak|sft_end>")
    return int(cfg.init.step) if cfg.init.step is not None else resolve(cfg.init.role, sft_run_dir(cfg))


def init_name(cfg: DictConfig) -> str:
    """The run directory's init axis; locates and checks the start checkpoint first, so bad
    input fails before the RL run directory is created."""
    check_family(cfg, locate_init(cfg))
    return layout.sft_init(init_step(cfg))


def semantic_config(cfg: DictConfig, resolved: dict[str, Any]) -> dict[str, Any]:
    """The config as the signature sees it: ``init.role=ood_peak`` that resolves to step 300 is
    the job ``init.step=300`` (same directory, same start checkpoint), so a study whose role
    lands on one of its listed steps finds that run DONE instead of refusing its directory."""
    if resolved.get("init", {}).get("role") is None:
        return resolved
    return {**resolved, "init": {**resolved["init"], "step": init_step(cfg), "role": None}}


def locate_init(cfg: DictConfig) -> Path:
    path = Run(sft_run_dir(cfg)).ckpt(init_step(cfg))
    if not path.is_dir():
        study = cfg.init.sft_study or cfg.study
        raise FileNotFoundError(
            f"RL init checkpoint {path} does not exist: produce it with `sweeps-train algo=sft "
            f"model={cfg.model.name} task={cfg.task.name} seed={cfg.seed} study={study} "
            f"paths.output_dir={cfg.paths.output_dir}` (with step {init_step(cfg)} in trainer.save_every)"
        )
    from sweeps.models.checkpoint import check_checkpoint_dir

    return check_checkpoint_dir(path)  # corrupted, pickle-only, no config.json: one line


def check_family(cfg: DictConfig, ckpt: Path) -> None:
    """Refuse a checkpoint whose architecture is not the configured model's."""
    from sweeps.models.build import expected_architecture

    want = expected_architecture(cfg.model)
    if want is None:
        return
    have = json.loads((ckpt / "config.json").read_text())
    diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    if diff:
        raise ValueError(
            f"checkpoint {ckpt} is not a {cfg.model.name} model: "
            + ", ".join(f"{k}={a} (expected {b})" for k, (a, b) in diff.items())
        )


def run(cfg: DictConfig, run: Run, task: Any) -> dict[str, Any]:
    set_threads(cfg.trainer.threads)
    from hydra.utils import get_class, get_method

    from sweeps.models.build import prepare
    from sweeps.models.checkpoint import load_checkpoint
    from sweeps.modules.callbacks import Recorder
    from sweeps.modules.data import PromptStream

    ckpt = locate_init(cfg)
    common.seed_everything(cfg.seed)
    tracker = common.start_tracker(cfg, run, stage=cfg.algo.name, init=layout.parse(run.path).init)
    resume = common.prepare_resume(run, tracker)
    model, tokenizer = load_checkpoint(ckpt, cfg.model.dtype, cfg.model.trust_remote_code)
    model.train()
    ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.algo.kl_coef > 0 else None
    model = prepare(model, cfg.model)
    rollout = get_method(cfg.rollout.builder)(model, tokenizer, cfg.rollout, weights_dir=ckpt)
    module = get_class(cfg.algo.module)(model, tokenizer, task, cfg.algo, rollout, ref, cfg.seed, cfg.trainer.max_steps)
    recorder = Recorder(run, tracker)
    callbacks = common.standard_callbacks(cfg, run, task, recorder, tokenizer)
    trainer = common.make_trainer(cfg, callbacks, max_steps=cfg.trainer.max_steps * module.updates_per_step)
    strategies.check_manual_optimization(trainer.strategy)
    prompts = PromptStream(task, cfg.seed, cfg.trainer.batch_size // cfg.algo.group_size, lambda: module.stage_step)
    return common.fit_and_finish(trainer, module, prompts, resume, run, tracker, recorder)
