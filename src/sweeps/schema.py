"""Structured-config schemas (Hydra ConfigStore + dataclasses) for every config group.

Each YAML under ``conf/<group>/`` starts with ``defaults: [<schema>, _self_]`` naming one of the
schemas registered here, so a typo or a wrong type fails at compose time with the key's name.
Cross-field checks live in ``__post_init__`` and run in :func:`validate`, which every entry
point calls right after composing (before any work). Groups whose YAML names a class with
``_target_`` (tasks) are checked against that class's own dataclass fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that composes but cannot work; the message names the key."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


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


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def __post_init__(self) -> None:
        _check(self.r > 0, f"model.lora.r must be > 0, got {self.r}")
        _check(0 <= self.dropout < 1, f"model.lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    name: str = MISSING
    builder: str = MISSING  # dotted path: sweeps.models.build.from_config | from_pretrained
    path: str | None = None  # hub id or local directory for from_pretrained
    dtype: str = "float32"
    trust_remote_code: bool = False
    init_seed: int = 0
    base_seed: int = 0  # which shipped pretrained base (models with one base per seed)
    arch: dict[str, Any] = field(default_factory=dict)
    lora: LoraConfig = field(default_factory=LoraConfig)
    spectral_targets: list[str] = field(default_factory=list)
    gradient_checkpointing: bool = (
        False  # recompute each block's activations in backward (less memory, ~1/3 more compute)
    )

    def __post_init__(self) -> None:
        _check(
            self.dtype in ("float32", "bfloat16", "float16"),
            f"model.dtype={self.dtype!r}: use float32, bfloat16 or float16",
        )


@dataclass
class AlgoConfig:
    name: str = MISSING
    job: str = MISSING  # dotted path of the function that runs this stage
    lr: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-7
    weight_decay: float = 0.0
    scheduler: str = "constant_with_warmup"  # any transformers.get_scheduler name
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, f"algo.lr must be > 0, got {self.lr}")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"algo.betas must be two values in [0, 1), got {self.betas}",
        )
        _check(self.eps > 0, f"algo.eps must be > 0, got {self.eps}")
        _check(self.weight_decay >= 0, f"algo.weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.warmup_steps >= 0, f"algo.warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            f"algo.max_grad_norm must be > 0 or null, got {self.max_grad_norm}",
        )
        _check(self.scheduler in SCHEDULERS, f"algo.scheduler={self.scheduler!r} is not one of {list(SCHEDULERS)}")


@dataclass
class RotationRegConfig:
    """Rotation-preserving SFT (``sweeps.modules.rotation_reg``); off unless ``lam`` > 0."""

    lam: float = 0.0  # weight λ of the penalty added to the SFT loss; 0 = off (plain SFT)
    k: int = 16  # top-k singular subspaces of each model.spectral_targets matrix
    variant: str = "block"  # block: ‖U0ᵀ(W − W0)V0‖²_F | angle: Σ sin² of the principal angles
    refresh: int = 10  # angle: steps between re-estimates of W's top-k bases
    n_iter: int = 2  # angle: subspace-iteration steps per re-estimate (warm-started)

    def __post_init__(self) -> None:
        _check(self.lam >= 0, f"algo.rotation_reg.lam must be >= 0 (0 = off), got {self.lam}")
        _check(self.k > 0, f"algo.rotation_reg.k must be > 0, got {self.k}")
        _check(self.variant in ("block", "angle"), f"algo.rotation_reg.variant={self.variant!r}: use block or angle")
        _check(self.refresh > 0, f"algo.rotation_reg.refresh must be > 0, got {self.refresh}")
        _check(self.n_iter > 0, f"algo.rotation_reg.n_iter must be > 0, got {self.n_iter}")


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
        _check(
            len(self.targets) > 0 and all(t > 0 for t in self.targets),
            f"algo.targets must be positive integers, got {list(self.targets)}",
        )
        _check(0 <= self.face_card_prob <= 1, f"algo.face_card_prob must be in [0, 1], got {self.face_card_prob}")
        _check(0 <= self.face_high_prob <= 1, f"algo.face_high_prob must be in [0, 1], got {self.face_high_prob}")
        _check(
            self.schedule_steps is None or self.schedule_steps > 0,
            f"algo.schedule_steps must be > 0 or null, got {self.schedule_steps}",
        )


@dataclass
class RLAlgoConfig(AlgoConfig):
    """Policy-gradient RL from an SFT checkpoint (grpo, reinforce, ppo)."""

    module: str = MISSING  # dotted path of the LightningModule class
    advantage: str = "group_norm"  # policy_gradient.ADVANTAGES key (ppo uses GAE)
    policy_loss: str = "clipped"  # policy_gradient.POLICY_LOSSES key
    agg: str = "token-mean"
    group_size: int = 8  # episodes per prompt (1 for ppo)
    epochs: int = 1
    minibatches: int = 1
    micro_batch_size: int = 16
    rollout_batch_size: int = 256
    clip: float = 0.2
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_attempts: int | None = 1  # null = the task's verification budget
    gamma: float = 0.9
    lam: float = 0.95
    vf_coef: float = 0.5
    value_clip: float = 0.2
    normalize_advantages: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("group_size", "epochs", "minibatches", "micro_batch_size", "rollout_batch_size"):
            _check(getattr(self, key) > 0, f"algo.{key} must be > 0, got {getattr(self, key)}")
        _check(self.clip > 0, f"algo.clip must be > 0, got {self.clip}")
        _check(self.kl_coef >= 0 and self.entropy_coef >= 0, "algo.kl_coef and algo.entropy_coef must be >= 0")
        _check(self.temperature > 0, f"algo.temperature must be > 0 for RL sampling, got {self.temperature}")
        _check(0 < self.top_p <= 1, f"algo.top_p must be in (0, 1], got {self.top_p}")
        _check(
            self.max_attempts is None or self.max_attempts > 0,
            f"algo.max_attempts must be > 0 or null, got {self.max_attempts}",
        )
        _check(self.kl_estimator in ("k1", "k2", "k3"), f"algo.kl_estimator={self.kl_estimator!r}: use k1, k2 or k3")
        _check(self.agg in ("token-mean", "seq-mean"), f"algo.agg={self.agg!r}: use token-mean or seq-mean")
        _check(
            self.advantage in ("group_norm", "group_mean", "gae"),
            f"algo.advantage={self.advantage!r}: use group_norm, group_mean or gae",
        )
        _check(
            self.policy_loss in ("clipped", "vanilla"), f"algo.policy_loss={self.policy_loss!r}: use clipped or vanilla"
        )
        _check(
            self.advantage == "gae" or self.group_size >= 2,
            f"algo.group_size={self.group_size} with algo.advantage={self.advantage}: a group baseline over one "
            f"episode makes every advantage 0 (nothing to learn): use algo.group_size >= 2",
        )


@dataclass
class TrainerConfig:
    name: str = MISSING
    max_steps: int = 300
    batch_size: int = 64
    accumulate: int = 1
    save_every: Any = 50  # an int (every N steps) or a list of steps
    eval_at_start: bool = True  # evaluate the starting weights as checkpoint 0
    log_every: int = 1
    threads: int = 1  # torch threads per process (seeds run in parallel)
    accelerator: str = "cpu"
    precision: str = "32-true"
    devices: int = 1  # processes (devices) per node; > 1: one rank each (sweeps.parallel)
    num_nodes: int = 1
    strategy: Any = None  # conf/trainer/strategy/<name>.yaml: auto, ddp, fsdp, deepspeed_stage_2
    rotation_monitor: int = 0  # log rotation/* (principal angles vs the start) every N steps; 0 = off
    rotation_k: int = 8  # top-k subspaces for the monitor (k <= n/2)
    progress_every_s: float = 30.0  # progress.json and, without a terminal, a log line this often
    # caps for quick runs (trainer=smoke); null = the eval's and the task's own (see apply_caps)
    eval_size: int | None = None  # evaluation items per split, at most
    max_attempts: int | None = None  # graded attempts per episode (evaluation and RL), at most
    max_new_tokens: int | None = None  # tokens per reply, at most

    def __post_init__(self) -> None:
        for cap in ("eval_size", "max_attempts", "max_new_tokens"):
            value = getattr(self, cap)
            _check(value is None or value > 0, f"trainer.{cap} must be > 0 or null (no cap), got {value}")
        _check(self.progress_every_s > 0, f"trainer.progress_every_s must be > 0, got {self.progress_every_s}")
        _check(
            self.rotation_monitor >= 0, f"trainer.rotation_monitor must be >= 0 (0 = off), got {self.rotation_monitor}"
        )
        _check(self.max_steps > 0, f"trainer.max_steps must be > 0, got {self.max_steps}")
        _check(self.batch_size > 0, f"trainer.batch_size must be > 0, got {self.batch_size}")
        _check(self.accumulate > 0, f"trainer.accumulate must be > 0, got {self.accumulate}")
        _check(self.log_every > 0, f"trainer.log_every must be > 0, got {self.log_every}")
        _check(self.threads > 0, f"trainer.threads must be > 0, got {self.threads}")
        _check(self.devices > 0, f"trainer.devices must be > 0, got {self.devices}")
        _check(self.num_nodes > 0, f"trainer.num_nodes must be > 0, got {self.num_nodes}")
        ranks = self.devices * self.num_nodes
        _check(
            self.batch_size % ranks == 0,
            f"trainer.batch_size={self.batch_size} does not split evenly over trainer.devices x trainer.num_nodes = "
            f"{ranks} processes: use a multiple of {ranks}",
        )
        steps = save_steps(self.save_every, self.max_steps)
        _check(
            len(steps) > 0,
            f"trainer.save_every={self.save_every!r} gives no checkpoint within trainer.max_steps={self.max_steps}",
        )


def save_steps(save_every: Any, max_steps: int) -> list[int]:
    """The checkpoint steps: every N steps (and the last), or an explicit list."""
    if isinstance(save_every, bool):
        raise ConfigError(f"trainer.save_every must be an int > 0 or a list of steps, got {save_every!r}")
    if isinstance(save_every, int):
        _check(save_every > 0, f"trainer.save_every must be > 0, got {save_every}")
        return sorted(set(range(save_every, max_steps + 1, save_every)) | {max_steps})
    try:
        steps = sorted({int(s) for s in save_every})
    except (TypeError, ValueError):
        raise ConfigError(f"trainer.save_every must be an int > 0 or a list of steps, got {save_every!r}") from None
    _check(all(0 < s <= max_steps for s in steps), f"trainer.save_every steps must lie in 1..{max_steps}, got {steps}")
    return steps


@dataclass
class EvalConfig:
    size: int | None = None  # items per split; null = task.eval_items
    seed: int = 42  # the frozen evaluation set's seed
    splits: list[str] = field(default_factory=lambda: ["id", "ood"])
    temperature: float = 0.0  # 0 = greedy; > 0 = sampled with seeds (run seed, step, item)
    top_p: float = 1.0
    top_k: int = 0
    batch_size: int = 256

    def __post_init__(self) -> None:
        _check(self.size is None or self.size > 0, f"eval.size must be > 0 or null, got {self.size}")
        _check(self.temperature >= 0, f"eval.temperature must be >= 0, got {self.temperature}")
        _check(0 < self.top_p <= 1, f"eval.top_p must be in (0, 1], got {self.top_p}")
        _check(self.batch_size > 0, f"eval.batch_size must be > 0, got {self.batch_size}")
        from sweeps.tasks.base import SPLITS

        _check(
            len(self.splits) > 0,
            f"eval.splits is empty: nothing would be evaluated; name at least one of {list(SPLITS)}",
        )
        bad = [s for s in self.splits if s not in SPLITS]
        _check(not bad, f"eval.splits has unknown split(s) {bad}: the tasks know {list(SPLITS)}")


@dataclass
class MemoryConfig:
    """The memory plan (``sweeps-plan``; ``sweeps-train`` checks it before loading on a GPU)."""

    gpu_gib: float | None = None  # memory per GPU; null = the current CUDA device's
    seq_len: int | None = None  # tokens per sequence; null = measured with the model's tokenizer
    overhead_gib: float = 2.0  # CUDA context, NCCL buffers, allocator slack
    check: str = "warn"  # sweeps-train on a GPU: warn | refuse | off

    def __post_init__(self) -> None:
        _check(self.gpu_gib is None or self.gpu_gib > 0, f"memory.gpu_gib must be > 0 or null, got {self.gpu_gib}")
        _check(self.seq_len is None or self.seq_len > 0, f"memory.seq_len must be > 0 or null, got {self.seq_len}")
        _check(self.overhead_gib >= 0, f"memory.overhead_gib must be >= 0, got {self.overhead_gib}")
        _check(self.check in ("warn", "refuse", "off"), f"memory.check={self.check!r}: use warn, refuse or off")


@dataclass
class TrackingConfig:
    builder: str = MISSING  # sweeps.tracking.mlflow_tracker.mlflow | sweeps.tracking.base.null
    uri: str | None = None
    experiment: str | None = None  # null = the study name
    parent_run: bool = False  # the study driver and analysis use one parent run (MLflow) for the whole study


@dataclass
class PathsConfig:
    output_dir: str = "outputs"


@dataclass
class InitConfig:
    step: int | None = None  # RL: the SFT checkpoint step to start from
    role: str | None = None  # RL: a role resolved from SFT results (e.g. ood_peak)
    sft_study: str | None = None  # RL: the study holding the SFT runs (default: this study)


@dataclass
class TrainConfig:
    study: str = "default"
    seed: int = 0
    parent_run_id: str | None = None
    model: ModelConfig = MISSING
    task: Any = MISSING
    algo: Any = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    rollout: Any = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    init: InitConfig = field(default_factory=InitConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    plan: Any = None  # sweeps-study: the grid of a named study (experiment files)

    def __post_init__(self) -> None:
        _check(bool(self.study) and "/" not in self.study, f"study={self.study!r} must be a non-empty name without '/'")
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        reg = getattr(self.algo, "rotation_reg", None)
        if reg is not None and reg.lam > 0:
            target = str((getattr(self.trainer, "strategy", None) or {}).get("_target_", ""))
            _check(
                "fsdp" not in target.lower(),  # same line as sweeps.modules.rotation_reg.FSDP_REFUSED
                "algo.rotation_reg.lam > 0 needs whole parameters on every process: not available with "
                "trainer/strategy=fsdp (sharded); use trainer/strategy=ddp or one process",
            )
            _check(
                not self.model.lora.enabled,
                "algo.rotation_reg.lam > 0 needs full fine-tuning: the LoRA-adapted weight is not a parameter; "
                "set model.lora.enabled=false",
            )
            _check(
                bool(self.model.spectral_targets),
                "algo.rotation_reg.lam > 0 needs model.spectral_targets (the matrices it regularises)",
            )
        group = getattr(self.algo, "group_size", None)
        if group and hasattr(self.trainer, "batch_size"):
            _check(
                self.trainer.batch_size % group == 0,
                f"algo.group_size={group} does not divide trainer.batch_size={self.trainer.batch_size} "
                f"(episodes per RL step): pick a batch size that is a multiple of the group size",
            )
            ranks = self.trainer.devices * self.trainer.num_nodes
            prompts = self.trainer.batch_size // group
            _check(
                prompts % ranks == 0,
                f"trainer.batch_size / algo.group_size = {prompts} prompts per RL step do not split evenly over "
                f"{ranks} processes (each rank samples whole groups): use a batch size that is a multiple of "
                f"{group * ranks}",
            )


def job_schema(name: str, **extra: tuple[Any, Any]) -> type:
    """A primary-config schema for an entry point that reuses ``train.yaml`` (``defaults:
    [train, <schema>, _self_]``) and adds ``extra`` fields (name=(type, default)).

    The schema is merged *after* ``train`` and its ``experiment``, so every inherited field is
    re-declared MISSING: a MISSING value never overwrites one already composed (otherwise
    ``sweeps-eval experiment=tiny_sft`` would see ``study: default``).
    """
    import dataclasses

    inherited = [(f.name, f.type, field(default=MISSING)) for f in dataclasses.fields(TrainConfig)]
    added = [(k, t, field(default_factory=d) if callable(d) else field(default=d)) for k, (t, d) in extra.items()]
    cls = dataclasses.make_dataclass(name, inherited + added, bases=(TrainConfig,))
    cls.__module__ = __name__  # the inherited annotations are strings in this module
    return cls


EvalJobConfig = job_schema(
    "EvalJobConfig",
    ckpt=(str | None, None),  # the checkpoint directory to score
    out=(str | None, None),  # where eval.json goes (default: the checkpoint directory)
)


def asset_path(rel: str) -> str:
    """``${sweeps_asset:tiny_base/base0}``: a file shipped in the repository's ``assets/``, as an
    absolute path (jobs may run in another working directory, e.g. on SLURM)."""
    from pathlib import Path

    from sweeps import CONF_DIR

    return str(Path(CONF_DIR).parent / "assets" / rel)


def register() -> None:
    if not OmegaConf.has_resolver("sweeps_asset"):
        OmegaConf.register_new_resolver("sweeps_asset", asset_path)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalJobConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="algo", name="sft_schema", node=SFTAlgoConfig)
    cs.store(group="algo", name="rl_schema", node=RLAlgoConfig)
    cs.store(group="algo", name="pretrain_schema", node=PretrainAlgoConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)


register()


def validate(cfg: DictConfig) -> Any:
    """Run every cross-field check (``__post_init__``) and the task's own field checks.

    Returns the instantiated task. Raises ConfigError (or the task's ValueError) with a
    one-line message naming the key.
    """
    check_keys(cfg)
    OmegaConf.to_object(cfg)  # instantiates the dataclasses: runs __post_init__
    apply_caps(cfg)
    return build_task(cfg.task)


def check_keys(node: Any, prefix: str = "") -> None:
    """Refuse a key that is not a field of its node's schema. Hydra refuses ``trainer.max_stepz=3``
    but suggests ``+trainer.max_stepz=3``, which it accepts and OmegaConf then keeps silently."""
    import dataclasses
    import difflib

    cls = OmegaConf.get_type(node)
    known = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else None
    for key, value in node.items_ex(resolve=False):
        if known is not None and key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean {prefix}{close[0]}?" if close else f"the keys are {known}"
            raise ConfigError(f"{prefix}{key} is not a key of {cls.__name__}: {fix}")
        if isinstance(value, DictConfig):
            check_keys(value, f"{prefix}{key}.")


def apply_caps(cfg: DictConfig) -> None:
    """Lower ``eval.size``, ``task.max_attempts``, ``algo.max_attempts`` and ``task.max_new_tokens``
    to the trainer's caps (``trainer=smoke`` sets them), in ``cfg`` itself, so the run's
    config.yaml, signature and MLflow params show what actually ran."""
    from omegaconf import open_dict

    trainer = cfg.get("trainer")
    if trainer is None:
        return
    with open_dict(cfg):
        if trainer.get("eval_size") and "eval" in cfg:
            n = cfg.eval.size or cfg.task.get("eval_items")
            cfg.eval.size = min(n, trainer.eval_size) if n else trainer.eval_size
        if trainer.get("max_attempts"):
            for node in (cfg.task, cfg.get("algo")):
                if node is not None and node.get("max_attempts") is not None:
                    node.max_attempts = min(node.max_attempts, trainer.max_attempts)
        if trainer.get("max_new_tokens") and cfg.task.get("max_new_tokens") is not None:
            cfg.task.max_new_tokens = min(cfg.task.max_new_tokens, trainer.max_new_tokens)


def build_task(task_cfg: DictConfig) -> Any:
    """Instantiate ``task._target_``; unknown keys and wrong types name the key."""
    import dataclasses

    from hydra.utils import get_class

    target = task_cfg.get("_target_")
    _check(
        bool(target),
        "task._target_ is missing: a task config names its class, e.g. sweeps.tasks.general_points.GeneralPoints",
    )
    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001
        raise ConfigError(f"task._target_={target!r} is not an importable class") from None
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    params = {k: v for k, v in OmegaConf.to_container(task_cfg, resolve=True).items() if k != "_target_"}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ConfigError(f"task.{unknown[0]} is not a field of {cls.__name__} (fields: {sorted(fields)})")
    try:
        task = cls(**params)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
    check_splits(task)
    return task


def check_splits(task: Any) -> None:
    """Draw one example of each split, so settings that admit no example (targets no hand can
    reach, an empty value range) fail here, before any run directory or model exists."""
    import random

    from sweeps.tasks.base import SPLITS

    for split in SPLITS:
        try:
            task.sample(split, random.Random(0))
        except (ValueError, RuntimeError) as err:
            raise ConfigError(
                f"task {task.name}: its {split} split is empty ({err}): change the task's {split} settings"
            ) from None
