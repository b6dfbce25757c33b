"""The pretraining stage: a tiny base model from scratch, on a rule-stated task mixture.

SFT from a randomly initialised model has no out-of-distribution skill to lose, so the tiny
models get a base first. Every pretraining example states its own rule in the prompt (each of
J, Q, K valued 11..13 with probability ``algo.face_high_prob``, else 1..10), and draws its
target from ``algo.targets``; each card is a face card with probability ``algo.face_card_prob``.
The defaults make every card value 1..13 equally common (see
``GeneralPoints.sample_pretrain``): the base learns to follow the rule it is told, under every
rule. The task's ID and OOD rules
are just two rules among many, so the base solves both about equally well; the SFT stage then
trains on the ID rule only. The loss, optimiser, checkpoints and checkpoint evaluation are the
SFT stage's; only the data differ.

    sweeps-train -m hydra/launcher=local experiment=tiny_pretrain seed=0,1,2
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from sweeps.jobs import common
from sweeps.runs import Run
from sweeps.threads import set_threads


def init_name(cfg: DictConfig) -> str:
    """The run directory's init axis."""
    return "scratch"


def run(cfg: DictConfig, run: Run, task: Any) -> dict[str, Any]:
    set_threads(cfg.trainer.threads)
    from sweeps.models.build import build
    from sweeps.modules.callbacks import Recorder
    from sweeps.modules.data import SFTStream
    from sweeps.modules.sft import SFTModule

    if not hasattr(task, "sample_pretrain"):
        raise ValueError(
            f"algo=pretrain: task {task.name!r} has no pretraining distribution (sample_pretrain); "
            "use a general_points task"
        )
    common.seed_everything(cfg.seed)
    tracker = common.start_tracker(cfg, run, stage="pretrain", init="scratch")
    resume = common.prepare_resume(run, tracker)
    model, tokenizer = build(cfg.model)
    module = SFTModule(model, cfg.algo, cfg.algo.schedule_steps or cfg.trainer.max_steps)
    recorder = Recorder(run, tracker)
    callbacks = common.standard_callbacks(cfg, run, task, recorder, tokenizer)
    trainer = common.make_trainer(cfg, callbacks, gradient_clip_val=cfg.algo.max_grad_norm)
    accumulate = cfg.trainer.accumulate
    targets = tuple(int(t) for t in cfg.algo.targets)
    face_card, face_high = float(cfg.algo.face_card_prob), float(cfg.algo.face_high_prob)

    def draw(rng):
        return task.sample_pretrain(rng, targets, face_card, face_high)

    stream = SFTStream(
        task,
        tokenizer,
        cfg.seed,
        cfg.trainer.batch_size,
        start_batch=lambda: trainer.global_step * accumulate,
        draw=draw,
        salt="pretrain",
    )
    return common.fit_and_finish(trainer, module, stream, resume, run, tracker, recorder)
