"""Plumbing every training stage shares: seeds, tracker, evaluator, the Lightning trainer.

In a multi-process job every rank runs a stage's job function; rank 0 alone starts the MLflow
run, writes metrics.jsonl, the checkpoints' files and DONE (the other ranks get a null tracker
and a recorder that writes nothing), and every decision taken from the run directory (where to
resume, the final summary) is taken on rank 0 and broadcast.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.parallel import world
from sweeps.runs import Run, latest_values, layout
from sweeps.schema import save_steps

log = logging.getLogger(__name__)


def axis_tags(cfg: DictConfig, stage: str, init: str) -> dict[str, str]:
    """MLflow tags for every grid axis, so runs stay comparable in the MLflow UI."""
    return {
        "sweeps.study": cfg.study,
        "sweeps.stage": stage,
        "sweeps.model": cfg.model.name,
        "sweeps.task": cfg.task.name,
        "sweeps.init": init,
        "sweeps.seed": str(cfg.seed),
        "sweeps.algo": cfg.algo.name,
        "sweeps.run_name": layout.RunKey(stage, cfg.model.name, cfg.task.name, init, int(cfg.seed)).relative(),
    }


def start_tracker(cfg: DictConfig, run: Run, stage: str, init: str) -> Any:
    """The job's tracker, started (rank 0); the null tracker on the other ranks."""
    from hydra.utils import get_method

    from sweeps.tracking.base import null

    if not world.world().main:
        return null()
    from sweeps.secrets import config_yaml, redact

    tracker = get_method(cfg.tracking.builder)(cfg)
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))  # params and artifact: no secrets
    tracker.start(run.path, resolved, axis_tags(cfg, stage, init), config_yaml(cfg))
    return tracker


def make_evaluator(cfg: DictConfig, task: Any) -> Any:
    from sweeps.evaluation import Evaluator

    root = Path(cfg.paths.output_dir) / cfg.study / "evalsets"
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    return Evaluator(task, task_cfg, cfg.eval, root, cfg.seed)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch: with the run seed on rank 0 (as a one-process job), with
    one derived from (run seed, rank) on the others, so ranks draw different dropout masks.
    Data, prompts and sampling seeds do not come from these generators: they derive from the
    run seed and the global index of the example, prompt or episode."""
    import lightning as L

    from sweeps.generation.base import derive_seed

    rank = world.world().rank
    L.seed_everything(seed if rank == 0 else derive_seed(seed, "rank", rank) % 2**32, workers=True, verbose=False)


def standard_callbacks(cfg: DictConfig, run: Run, task: Any, recorder: Any, tokenizer: Any) -> list[Any]:
    """Step logging, checkpoint-evaluate, progress, the optional online rotation monitor, and
    the SIGTERM stop (last, so a checkpoint step saves before it)."""
    from sweeps.modules.callbacks import CheckpointEvaluate, StepLogger
    from sweeps.modules.preemption import StopOnSigterm
    from sweeps.modules.progress import Progress

    evaluate = CheckpointEvaluate(
        run, checkpoint_steps(cfg), make_evaluator(cfg, task), recorder, tokenizer, cfg.trainer.eval_at_start
    )
    name = layout.parse(run.path).relative()  # stage/model/task/init/seed=s
    callbacks = [
        StepLogger(recorder, cfg.trainer.log_every),
        evaluate,
        Progress(run, name, cfg.trainer.max_steps, cfg.trainer.progress_every_s, evaluate),
    ]
    if cfg.trainer.rotation_monitor:
        from sweeps.modules.rotation_monitor import RotationMonitor

        callbacks.append(
            RotationMonitor(
                recorder.record,
                every_n_steps=cfg.trainer.rotation_monitor,
                targets=list(cfg.model.spectral_targets),
                k=cfg.trainer.rotation_k,
            )
        )
    callbacks.append(StopOnSigterm(run, evaluate, cfg.trainer.max_steps))  # last: after this step's checkpoint
    return callbacks


def loader(stream: Any) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(stream, batch_size=None, num_workers=0, collate_fn=lambda b: b)


def make_trainer(cfg: DictConfig, callbacks: list[Any], **kwargs: Any) -> Any:
    """The Lightning trainer: ``trainer.devices`` x ``trainer.num_nodes`` processes under the
    strategy ``trainer/strategy`` names, the ranks as :mod:`sweeps.parallel.launch` found them."""
    import lightning as L

    from sweeps.parallel import launch, strategies

    kwargs.setdefault("max_steps", cfg.trainer.max_steps)
    env = launch.cluster_environment(cfg)
    return L.Trainer(
        max_epochs=-1,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=strategies.build(cfg),
        plugins=[env] if env else None,
        use_distributed_sampler=False,  # the example streams shard themselves by rank
        precision=cfg.trainer.precision,
        accumulate_grad_batches=cfg.trainer.accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        deterministic=False,
        **kwargs,
    )


def prepare_resume(run: Run, tracker: Any) -> Path | None:
    """The resume checkpoint, if any (the same on every rank); drops metric records logged
    after it (they are redone)."""
    from sweeps.modules.callbacks import resume_state

    def decide() -> Path | None:
        state = resume_state(run)
        if state is None:
            run.truncate_metrics(lambda r: False)
            return None
        step, path = state
        run.truncate_metrics(lambda r: r["step"] <= step)
        kept = len(run.read_metrics())
        if getattr(tracker, "pushed", 0) > kept:
            tracker.pushed = kept
        log.info("resuming %s from step %d", run.path, step)
        return path

    return world.on_main(decide)


def fit_and_finish(
    trainer: Any, module: Any, stream: Any, resume: Path | None, run: Run, tracker: Any, recorder: Any
) -> dict[str, Any]:
    """Train (resuming if a state exists); on any failure close the mirror as FAILED (KILLED on
    SIGTERM) and re-raise. The trainer state is unpickled with ``weights_only=True`` (tensors and
    plain containers only: a resume file cannot run code), a sharded one after its metadata
    passed :func:`~sweeps.modules.callbacks.check_sharded_metadata`."""
    from sweeps.modules.callbacks import check_resume_format
    from sweeps.modules.preemption import Preempted

    if resume is not None:
        check_resume_format(run, resume, trainer.strategy)
    try:
        try:
            trainer.fit(
                module, train_dataloaders=loader(stream), ckpt_path=str(resume) if resume else None, weights_only=True
            )
        except pickle.UnpicklingError as err:  # torch's "Weights only load failed ..." (many lines)
            from sweeps.cli import first_line

            raise ValueError(
                f"{resume}: the trainer state holds more than tensors and plain containers, refused "
                f"({first_line(err, 200)}); delete {run.resume_dir} to start the run over"
            ) from None
    except BaseException as err:
        recorder.close()
        tracker.finish("KILLED" if isinstance(err, Preempted) else "FAILED")
        raise
    return finish(run, tracker, recorder)


def finish(run: Run, tracker: Any, recorder: Any) -> dict[str, Any]:
    """Close the records and write DONE (rank 0); every rank returns the summary."""
    recorder.close()

    def done() -> dict[str, Any]:
        summary = {k: v for k, v in latest_values(run.read_metrics()).items()}
        summary["checkpoints"] = [s for s, _ in run.checkpoints()]
        tracker.finish("FINISHED")
        run.mark_done(summary)
        return summary

    return world.on_main(done)


def checkpoint_steps(cfg: DictConfig) -> list[int]:
    return save_steps(
        OmegaConf.to_object(cfg.trainer.save_every)
        if OmegaConf.is_config(cfg.trainer.save_every)
        else cfg.trainer.save_every,
        cfg.trainer.max_steps,
    )
