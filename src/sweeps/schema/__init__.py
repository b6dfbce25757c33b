"""Structured-config schemas (Hydra ConfigStore + dataclasses) for every config group.

Each YAML under ``conf/<group>/`` starts with ``defaults: [<schema>, _self_]`` naming one of the
schemas registered here, so a typo or a wrong type fails at compose time with the key's name.
Cross-field checks live in ``__post_init__`` and run in :func:`validate`, which every entry
point calls right after composing (before any work). Groups whose YAML names a class with
``_target_`` (tasks) are checked against that class's own dataclass fields; the algo's
function nodes (``algo.advantage``, ``algo.policy_loss``, ``algo.kl_estimator``,
``algo.optimizer``) against the parameters of the function they name.

The package: ``errors`` (ConfigError), ``callables`` (the ``_target_`` checks), ``algo``
(conf/algo), ``job`` (model, trainer, eval, memory, tracking, paths, init and the whole job),
and here the registration with Hydra's ConfigStore, :func:`validate` and the task checks.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from sweeps.schema.algo import (
    SCHEDULERS,
    AlgoConfig,
    PretrainAlgoConfig,
    RLAlgoConfig,
    RotationRegConfig,
    SFTAlgoConfig,
)
from sweeps.schema.callables import check_callable
from sweeps.schema.errors import ConfigError, _check, check
from sweeps.schema.job import (
    EvalConfig,
    EvalJobConfig,
    InitConfig,
    LoraConfig,
    MemoryConfig,
    ModelConfig,
    PathsConfig,
    TrackingConfig,
    TrainConfig,
    TrainerConfig,
    job_schema,
    save_steps,
)

__all__ = [
    "SCHEDULERS",
    "AlgoConfig",
    "ConfigError",
    "EvalConfig",
    "EvalJobConfig",
    "InitConfig",
    "LoraConfig",
    "MemoryConfig",
    "ModelConfig",
    "PathsConfig",
    "PretrainAlgoConfig",
    "RLAlgoConfig",
    "RotationRegConfig",
    "SFTAlgoConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainerConfig",
    "_check",
    "apply_caps",
    "asset_path",
    "build_task",
    "check",
    "check_callable",
    "check_keys",
    "check_splits",
    "job_schema",
    "register",
    "save_steps",
    "validate",
]


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
