"""Model builders named by ``model.builder`` in ``conf/model/*.yaml`` (the config is the registry).

Each builder takes the model config and returns ``(model, tokenizer)``:

- ``from_config``: a randomly initialised decoder-only transformer from a transformers config
  class (``model.arch``) with the project's own word-level tokenizer; no hub access, seconds on
  a CPU. The init seed is part of the config, so a base model is reproducible.
- ``from_pretrained``: a real model by hub id or local path (``model.path``), with its own
  tokenizer and chat template, loaded through safetensors only; ``trust_remote_code`` stays off
  unless the config turns it on.

Both apply activation checkpointing and LoRA (peft) when the config asks (:func:`prepare`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
import transformers

from sweeps.models.tokenizer import build_tokenizer

log = logging.getLogger(__name__)


def _dtype(name: str) -> torch.dtype:
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ValueError(f"model.dtype={name!r} is not one of float32, bfloat16, float16") from None


def _config_architecture(cfg: Any) -> dict[str, Any]:
    """A ``from_config`` model's architecture, from ``model.arch`` alone (no hub access)."""
    arch = dict(cfg.arch)
    model_type = getattr(transformers, arch["config_class"]).model_type
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    return {
        "model_type": model_type,
        **{k: arch[k] for k in keys if k in arch},
        "vocab_size": len(build_tokenizer()),
    }  # the project's own tokenizer: another vocabulary is another model


def _pretrained_architecture(cfg: Any) -> dict[str, Any] | None:
    """A ``from_pretrained`` model's architecture, from its config.json (None when offline and
    not cached: the check is skipped)."""
    try:
        config = transformers.AutoConfig.from_pretrained(cfg.path, trust_remote_code=bool(cfg.trust_remote_code))
    except Exception:  # noqa: BLE001 - offline and not cached: the check is skipped
        log.warning("cannot read %s's config to check the checkpoint's architecture", cfg.path)
        return None
    return {
        "model_type": config.model_type,
        "hidden_size": getattr(config, "hidden_size", None),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
    }


def builder(architecture: Callable[[Any], dict[str, Any] | None]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Tag a model builder with ``architecture(cfg)``: the config.json fields its checkpoints must
    have (:func:`expected_architecture`)."""

    def tag(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.architecture = architecture  # type: ignore[attr-defined]
        return fn

    return tag


@builder(_config_architecture)
def from_config(cfg: Any, meta: bool = False) -> tuple[torch.nn.Module, Any]:
    """``meta=True``: the same model on PyTorch's meta device (shapes only, for the memory plan)."""
    tokenizer = build_tokenizer(model_max_length=int(cfg.arch.get("max_position_embeddings", 1024)))
    arch = dict(cfg.arch)
    config_cls = getattr(transformers, arch.pop("config_class"))
    config = config_cls(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **arch,
    )
    with torch.random.fork_rng(devices=[]), torch.device("meta" if meta else "cpu"):
        torch.manual_seed(int(cfg.init_seed))
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=_dtype(cfg.dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return prepare(model, cfg), tokenizer


@builder(_pretrained_architecture)
def from_pretrained(cfg: Any, meta: bool = False) -> tuple[torch.nn.Module, Any]:
    """``meta=True``: the architecture from the config alone, on the meta device (no weights
    read), and the tokenizer if it can be loaded (None otherwise)."""
    if not cfg.path:
        raise ValueError(f"model.path is empty for model {cfg.name!r}: set a hub id or a local directory")
    trust = bool(cfg.trust_remote_code)
    if meta:
        with _hub_errors(cfg, "config"):
            config = transformers.AutoConfig.from_pretrained(cfg.path, trust_remote_code=trust)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(
                config, dtype=_dtype(cfg.dtype), trust_remote_code=trust
            )
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.path, trust_remote_code=trust)
        except Exception:  # noqa: BLE001 - a config without tokenizer files: the plan asks for memory.seq_len
            tokenizer = None
        return prepare(model, cfg), tokenizer
    with _hub_errors(cfg, "tokenizer"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.path, trust_remote_code=trust)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with _hub_errors(cfg, "weights"):
        model = transformers.AutoModelForCausalLM.from_pretrained(
            cfg.path, dtype=_dtype(cfg.dtype), trust_remote_code=trust, use_safetensors=True
        )
    return prepare(model, cfg), tokenizer


@contextlib.contextmanager
def _hub_errors(cfg: Any, what: str) -> Iterator[None]:
    """transformers' errors for a path that is neither a local model directory nor a reachable hub
    id (several lines, an OSError) as one line naming ``model.path``."""
    try:
        yield
    except (OSError, ValueError) as err:
        from sweeps.cli import first_line

        raise ValueError(
            f"model.path={cfg.path!r} (model {cfg.name}): cannot load its {what} ({first_line(err)}): set model.path "
            "to a local model directory, or to a hub id that is downloaded or reachable"
        ) from None


def prepare(model: torch.nn.Module, cfg: Any) -> torch.nn.Module:
    """The model as the training stages use it: activation checkpointing when
    ``model.gradient_checkpointing`` (Hugging Face's, non-reentrant, so it also works with LoRA
    and under FSDP), then LoRA adapters when ``model.lora.enabled``."""
    if cfg.get("gradient_checkpointing"):
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.2x
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return maybe_lora(model, cfg)


def maybe_lora(model: torch.nn.Module, cfg: Any) -> torch.nn.Module:
    lora = cfg.get("lora")
    if not lora or not lora.enabled:
        return model
    import peft

    config = peft.LoraConfig(
        r=int(lora.r),
        lora_alpha=float(lora.alpha),
        lora_dropout=float(lora.dropout),
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def build(cfg: Any, meta: bool = False) -> tuple[torch.nn.Module, Any]:
    """Build the model a config names (``model.builder`` is a dotted path to a builder);
    ``meta=True`` builds it on the meta device, without weights."""
    from hydra.utils import get_method

    return get_method(cfg.builder)(cfg, meta=meta) if meta else get_method(cfg.builder)(cfg)


def expected_architecture(cfg: Any) -> dict[str, Any] | None:
    """The config.json fields a checkpoint of this model must have (None: cannot tell offline).

    Each builder carries its own answer as its ``architecture`` attribute (see :func:`builder`),
    so a new builder says what its checkpoints look like where it is defined."""
    from hydra.utils import get_method

    architecture = getattr(get_method(cfg.builder), "architecture", None)
    return architecture(cfg) if architecture is not None else None
