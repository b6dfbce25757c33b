"""Schemas of ``conf/algo/*.yaml``: the optimizer shared by every stage, SFT (with the rotation
regulariser), pretraining and policy-gradient RL.

The RL components and the optimizer are ``_target_`` nodes (:mod:`sweeps.schema.callables`),
so their fields are the target's parameters, not fields here: a new RL variant adds a
function and a YAML, and this file does not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from sweeps.schema.callables import check_callable, check_range
from sweeps.schema.errors import check

# transformers.get_scheduler names (kept here so validation needs no transformers import)
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)


def check_optimizer(node: Any) -> None:
    """``algo.optimizer``: a partial optimizer class (``conf/algo/optimizer/*.yaml``) and the
    ranges of the hyperparameters it sets."""
    check_callable(node, "algo.optimizer")
    check_range(node, "algo.optimizer", "lr", lambda v: v > 0, "> 0")
    check_range(node, "algo.optimizer", "eps", lambda v: v > 0, "> 0")
    check_range(node, "algo.optimizer", "weight_decay", lambda v: v >= 0, ">= 0")
    check_range(
        node, "algo.optimizer", "betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two values in [0, 1)"
    )


@dataclass
class AlgoConfig:
    name: str = MISSING
    job: str = MISSING  # dotted path of the function that runs this stage
    optimizer: Any = MISSING  # conf/algo/optimizer/<name>.yaml: _target_ (partial) + hyperparameters
    scheduler: str = "constant_with_warmup"  # any transformers.get_scheduler name
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        check_optimizer(self.optimizer)
        check(self.warmup_steps >= 0, f"algo.warmup_steps must be >= 0, got {self.warmup_steps}")
        check(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            f"algo.max_grad_norm must be > 0 or null, got {self.max_grad_norm}",
        )
        check(self.scheduler in SCHEDULERS, f"algo.scheduler={self.scheduler!r} is not one of {list(SCHEDULERS)}")


@dataclass
class RotationRegConfig:
    """Rotation-preserving SFT (``sweeps.modules.rotation_reg``); off unless ``lam`` > 0."""

    lam: float = 0.0  # weight λ of the penalty added to the SFT loss; 0 = off (plain SFT)
    k: int = 16  # top-k singular subspaces of each model.spectral_targets matrix
    variant: str = "block"  # block: ‖U0ᵀ(W − W0)V0‖²_F | angle: Σ sin² of the principal angles
    refresh: int = 10  # angle: steps between re-estimates of W's top-k bases
    n_iter: int = 2  # angle: subspace-iteration steps per re-estimate (warm-started)

    def __post_init__(self) -> None:
        check(self.lam >= 0, f"algo.rotation_reg.lam must be >= 0 (0 = off), got {self.lam}")
        check(self.k > 0, f"algo.rotation_reg.k must be > 0, got {self.k}")
        check(self.variant in ("block", "angle"), f"algo.rotation_reg.variant={self.variant!r}: use block or angle")
        check(self.refresh > 0, f"algo.rotation_reg.refresh must be > 0, got {self.refresh}")
        check(self.n_iter > 0, f"algo.rotation_reg.n_iter must be > 0, got {self.n_iter}")


@dataclass
class SFTAlgoConfig(AlgoConfig):
    """Supervised fine-tuning with a completion-only loss."""

    rotation_reg: RotationRegConfig = field(default_factory=RotationRegConfig)


@dataclass
class PretrainAlgoConfig(AlgoConfig):
    """Pretraining a tiny base from scratch on a rule-stated mixture (``sweeps.jobs.pretrain``)."""

    targets: list[int] = field(default_factory=lambda: [24])  # the target of each example
    face_card_prob: float = 6 / 13  # each card is a J/Q/K with this probability
    face_high_prob: float = 0.5  # each face value is drawn from 11..13 with this probability, else 1..10
    schedule_steps: int | None = (
        None  # LR schedule length (null: trainer.max_steps); a test replays the start of a long run
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            len(self.targets) > 0 and all(t > 0 for t in self.targets),
            f"algo.targets must be positive integers, got {list(self.targets)}",
        )
        check(0 <= self.face_card_prob <= 1, f"algo.face_card_prob must be in [0, 1], got {self.face_card_prob}")
        check(0 <= self.face_high_prob <= 1, f"algo.face_high_prob must be in [0, 1], got {self.face_high_prob}")
        check(
            self.schedule_steps is None or self.schedule_steps > 0,
            f"algo.schedule_steps must be > 0 or null, got {self.schedule_steps}",
        )


@dataclass
class RLAlgoConfig(AlgoConfig):
    """Policy-gradient RL from an SFT checkpoint (grpo, reinforce, ppo, ...).

    ``advantage``, ``policy_loss`` (with its ``clip`` and ``agg``) and ``kl_estimator`` are
    functions built by ``sweeps.modules.rl`` from ``_target_`` + ``_partial_: true``."""

    module: str = MISSING  # dotted path of the LightningModule class
    advantage: Any = MISSING  # e.g. sweeps.rl.advantages.group_advantages | gae (with gamma, lam)
    policy_loss: Any = MISSING  # e.g. sweeps.rl.losses.clipped_surrogate (with clip, agg)
    kl_estimator: Any = MISSING  # sweeps.rl.kl.k1 | k2 | k3
    group_size: int = 8  # episodes per prompt (1 for ppo)
    epochs: int = 1
    minibatches: int = 1
    micro_batch_size: int = 16
    rollout_batch_size: int = 256
    kl_coef: float = 0.0
    entropy_coef: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_attempts: int | None = 1  # null = the task's verification budget
    vf_coef: float = 0.5  # critic modules (ppo): weight of the value loss
    value_clip: float = 0.2  # critic modules: clip of the value loss
    normalize_advantages: bool = True  # critic modules: whiten the advantages over the buffer

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("group_size", "epochs", "minibatches", "micro_batch_size", "rollout_batch_size"):
            check(getattr(self, key) > 0, f"algo.{key} must be > 0, got {getattr(self, key)}")
        check(self.kl_coef >= 0 and self.entropy_coef >= 0, "algo.kl_coef and algo.entropy_coef must be >= 0")
        check(self.temperature > 0, f"algo.temperature must be > 0 for RL sampling, got {self.temperature}")
        check(0 < self.top_p <= 1, f"algo.top_p must be in (0, 1], got {self.top_p}")
        check(
            self.max_attempts is None or self.max_attempts > 0,
            f"algo.max_attempts must be > 0 or null, got {self.max_attempts}",
        )
        advantage = check_callable(self.advantage, "algo.advantage")
        for name in ("gamma", "lam"):
            check_range(self.advantage, "algo.advantage", name, lambda v: 0 <= v <= 1, "in [0, 1]")
        check_callable(self.policy_loss, "algo.policy_loss")
        check_range(self.policy_loss, "algo.policy_loss", "clip", lambda v: v > 0, "> 0")
        check_callable(self.kl_estimator, "algo.kl_estimator")
        check(
            not getattr(advantage, "per_group", False) or self.group_size >= 2,
            f"algo.group_size={self.group_size} with algo.advantage={self.advantage['_target_']}: a group baseline "
            f"over one episode makes every advantage 0 (nothing to learn): use algo.group_size >= 2",
        )
