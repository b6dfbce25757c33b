"""Plumbing every training stage shares: threads, tracker, evaluator, the Lightning trainer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.runs import Run, latest_values
from sweeps.schema import save_steps

log = logging.getLogger(__name__)


def axis_tags(cfg: DictConfig, stage: str, init: str) -> dict[str, str]:
    """MLflow tags for every grid axis, so runs stay comparable in the MLflow UI."""
    return {"sweeps.study": cfg.study, "sweeps.stage": stage, "sweeps.model": cfg.model.name,
            "sweeps.task": cfg.task.name, "sweeps.init": init, "sweeps.seed": str(cfg.seed),
            "sweeps.algo": cfg.algo.name,
            "sweeps.run_name": f"{stage}/{cfg.model.name}/{cfg.task.name}/{init}/seed={cfg.seed}"}


def start_tracker(cfg: DictConfig, run: Run, stage: str, init: str) -> Any:
    from hydra.utils import get_method

    tracker = get_method(cfg.tracking.builder)(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tracker.start(run.path, resolved, axis_tags(cfg, stage, init), OmegaConf.to_yaml(cfg, resolve=True))
    return tracker


def make_evaluator(cfg: DictConfig, task: Any) -> Any:
    from sweeps.evaluation import Evaluator

    root = Path(cfg.paths.output_dir) / cfg.study / "evalsets"
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    return Evaluator(task, task_cfg, cfg.eval, root, cfg.seed)


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def standard_callbacks(cfg: DictConfig, run: Run, task: Any, recorder: Any, tokenizer: Any) -> list[Any]:
    """Step logging, checkpoint-evaluate, and the optional online rotation monitor."""
    from sweeps.modules.callbacks import CheckpointEvaluate, StepLogger

    callbacks = [StepLogger(recorder, cfg.trainer.log_every),
                 CheckpointEvaluate(run, checkpoint_steps(cfg), make_evaluator(cfg, task), recorder, tokenizer,
                                    cfg.trainer.eval_at_start)]
    if cfg.trainer.rotation_monitor:
        from sweeps.modules.rotation_monitor import RotationMonitor

        callbacks.append(RotationMonitor(recorder.record, every_n_steps=cfg.trainer.rotation_monitor,
                                         targets=list(cfg.model.spectral_targets), k=cfg.trainer.rotation_k))
    return callbacks


def loader(stream: Any) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(stream, batch_size=None, num_workers=0, collate_fn=lambda b: b)


def make_trainer(cfg: DictConfig, callbacks: list[Any], **kwargs: Any) -> Any:
    import lightning as L

    kwargs.setdefault("max_steps", cfg.trainer.max_steps)
    return L.Trainer(
        max_epochs=-1, accelerator=cfg.trainer.accelerator, devices=1,
        precision=cfg.trainer.precision, accumulate_grad_batches=cfg.trainer.accumulate,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=callbacks, num_sanity_val_steps=0, deterministic=False, **kwargs,
    )


def prepare_resume(run: Run, tracker: Any) -> Path | None:
    """The resume checkpoint, if any; drops metric records logged after it (they are redone)."""
    from sweeps.modules.callbacks import read_resume_step

    step = read_resume_step(run)
    if step is None:
        run.truncate_metrics(lambda r: False)
        return None
    run.truncate_metrics(lambda r: r["step"] <= step)
    kept = len(run.read_metrics())
    if getattr(tracker, "pushed", 0) > kept:
        tracker.pushed = kept
    log.info("resuming %s from step %d", run.path, step)
    return run.resume_file


def fit_and_finish(trainer: Any, module: Any, stream: Any, resume: Path | None, run: Run, tracker: Any,
                   recorder: Any) -> dict[str, Any]:
    """Train (resuming if a state exists); on any failure close the mirror as FAILED and re-raise."""
    try:
        trainer.fit(module, train_dataloaders=loader(stream), ckpt_path=str(resume) if resume else None)
    except BaseException:
        recorder.close()
        tracker.finish("FAILED")
        raise
    return finish(run, tracker, recorder)


def finish(run: Run, tracker: Any, recorder: Any) -> dict[str, Any]:
    recorder.close()
    summary = {k: v for k, v in latest_values(run.read_metrics()).items()}
    checkpoints = [s for s, _ in run.checkpoints()]
    summary["checkpoints"] = checkpoints
    tracker.finish("FINISHED")
    run.mark_done(summary)
    return summary


def checkpoint_steps(cfg: DictConfig) -> list[int]:
    return save_steps(OmegaConf.to_object(cfg.trainer.save_every) if OmegaConf.is_config(cfg.trainer.save_every)
                      else cfg.trainer.save_every, cfg.trainer.max_steps)
