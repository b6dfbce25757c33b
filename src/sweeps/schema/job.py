"""Schemas of one job's config (``train.yaml`` and the entry points that reuse it): the model,
trainer, evaluation, memory plan, tracking, paths and RL init, and the cross-field checks
between groups (:class:`TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from sweeps.schema.errors import ConfigError, check

_check = check


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
    cls.__module__ = __name__  # the inherited annotations are strings in this module (sweeps.schema.job)
    return cls


EvalJobConfig = job_schema(
    "EvalJobConfig",
    ckpt=(str | None, None),  # the checkpoint directory to score
    out=(str | None, None),  # where eval.json goes (default: the checkpoint directory)
)
