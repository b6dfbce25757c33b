"""Hugging Face checkpoints: atomic saves in safetensors, validated loads with one-line errors.

A checkpoint directory is what ``save_pretrained`` writes (config.json, model.safetensors,
tokenizer files, generation config), so ``AutoModelForCausalLM.from_pretrained`` and vLLM load
it as is. LoRA models are merged before saving, so every checkpoint is a full model.

In a multi-process job every rank calls :func:`save_checkpoint`: sharded (FSDP) weights are
all-gathered one tensor at a time, and rank 0 alone writes the directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sweeps.cli import first_line


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used; the message names the path and the fix."""


def save_checkpoint(model: torch.nn.Module, tokenizer: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` (LoRA merged) and ``tokenizer`` to ``path`` atomically (temp dir, then
    rename). Every rank of a job calls it; rank 0 writes, and returns once the files exist.

    The weights are written in each base weight's own dtype. A LoRA weight is W + BA computed
    out of place, one weight at a time: merge_adapter/unmerge_adapter would round the frozen
    bf16 base weights on every save (about 1e-3 relative drift).
    """
    from sweeps.parallel import world
    from sweeps.runs import atomic_dir

    path = Path(path)
    main = world.world().main
    base = model.get_base_model() if _is_peft(model) else model
    dtypes = {k.replace(".base_layer.", "."): v.dtype for k, v in base.state_dict().items()}
    state = {}
    for name, tensor in merged_weights(model):  # all-gathers on every rank if sharded
        if main:
            state[name] = tensor.detach().to("cpu", dtypes[name])
    if main:
        with atomic_dir(path) as tmp:
            base.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            _fix_architectures(tmp / "config.json", base)
            tokenizer.save_pretrained(tmp)
    world.barrier()
    return path


def _fix_architectures(config_file: Path, model: torch.nn.Module) -> None:
    """``save_pretrained`` records the model's class name; a sharded model's class is FSDP2's
    wrapper (``FSDPQwen2ForCausalLM``), which neither transformers nor vLLM knows."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(model, FSDPModule):
        return
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    config = json.loads(config_file.read_text())
    config["architectures"] = [cls.__name__]
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _lora_deltas(base: torch.nn.Module) -> dict[str, tuple[Any, list[str]]]:
    """{state-dict name of a LoRA-wrapped base weight: (peft layer, adapters to add to it)}."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for prefix, layer in base.named_modules():
        if not isinstance(layer, LoraLayer) or layer.disable_adapters:
            continue
        adapters = [a for a in layer.active_adapters if a in layer.lora_A and a not in layer.merged_adapters]
        if any(layer.use_dora.get(a, False) for a in adapters):
            raise ValueError(f"cannot merge DoRA adapters out of place ({prefix}): use plain LoRA")
        if adapters:
            out[f"{prefix}.base_layer.weight"] = (layer, adapters)
    return out


def merged_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor) for every weight of ``model`` with LoRA merged, named as
    ``save_checkpoint`` writes them. Plain weights are the live tensors (no copy); a LoRA-wrapped
    weight is merged out of place, one at a time, so the training model is never modified.

    Sharded (FSDP) weights come whole: each is all-gathered when reached, so every rank of the
    job must iterate this generator to the end, together.
    """
    from sweeps.parallel.fsdp import full_tensor, storage_key

    peft_model = _is_peft(model)
    base = model.get_base_model() if peft_model else model
    deltas = _lora_deltas(base) if peft_model else {}
    seen: set[int] = set()
    for name, tensor in base.state_dict().items():
        if ".lora_" in name or storage_key(tensor) in seen:  # adapter factors; tied duplicates
            continue
        seen.add(storage_key(tensor))
        tensor = full_tensor(tensor)
        if name in deltas:
            layer, adapters = deltas[name]
            # W + sum of scaled B @ A, in float32; the engine casts it to its own dtype.  [out, in]
            tensor = tensor.float() + sum(full_tensor(layer.get_delta_weight(a)).float() for a in adapters)
        yield name.replace(".base_layer.", "."), tensor


def _is_peft(model: torch.nn.Module) -> bool:
    try:
        import peft
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, peft.PeftModel)


def check_checkpoint_dir(path: str | os.PathLike) -> Path:
    """Raise a one-line CheckpointError unless ``path`` holds HF weights and a config."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint directory {path} does not exist: check the path or run the job that writes it"
        )
    if not (path / "config.json").is_file():
        raise CheckpointError(f"checkpoint directory {path} has no config.json: it is not a Hugging Face checkpoint")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(
            f"{path / 'config.json'} is not valid JSON ({err}): re-save or delete this checkpoint"
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path / 'config.json'} is not a JSON object: re-save or delete this checkpoint")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"checkpoint directory {path} has only pickle weights ({', '.join(pickles)}), which are refused "
                "(unpickling can run code): convert them to safetensors with save_pretrained(safe_serialization=True)"
            )
        raise CheckpointError(
            f"checkpoint directory {path} has no *.safetensors weights: save it with save_pretrained(safe_serialization=True)"
        )
    for w in weights:
        _check_safetensors(w)
    return path


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# bytes per element of each safetensors dtype (sub-byte and exotic ones: not checked)
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "F64": 8,
    "I64": 8,
    "U64": 8,
}


def _check_safetensors(file: Path) -> dict[str, Any]:
    """Validate the header, each tensor's byte span (dtype x shape) and the data length of one
    safetensors file without loading it; returns the header."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n <= 0 or 8 + n > size:
                raise ValueError("header length out of range")
            header = json.loads(fh.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        end = 0
        for name, v in header.items():
            if name == "__metadata__":
                continue
            begin, stop = (int(x) for x in v["data_offsets"])
            width = _DTYPE_BYTES.get(v["dtype"])
            numel = 1
            for d in v["shape"]:
                numel *= int(d)
            if v["dtype"] not in _DTYPE_BYTES and not str(v["dtype"]).startswith("F"):
                raise ValueError(f"tensor {name} has unknown dtype {v['dtype']!r}")
            if not 0 <= begin <= stop or (width is not None and stop - begin != numel * width):
                raise ValueError(
                    f"tensor {name} ({v['dtype']} {v['shape']}) does not fit its data offsets {[begin, stop]}"
                )
            end = max(end, stop)
        if 8 + n + end != size:
            raise ValueError(f"file is {size} bytes, header says {8 + n + end}")
    except Exception as err:  # noqa: BLE001 - any failure means a corrupted file
        raise CheckpointError(f"corrupted safetensors file {file}: {err}; re-save or delete this checkpoint") from None
    return header


def _check_shapes(path: Path, config: Any, trust_remote_code: bool) -> None:
    """Every weight in the files has the shape config.json gives it (a config.json of another
    model size or vocabulary next to these weights); checked on the meta device, nothing loaded."""
    import transformers

    if getattr(config, "quantization_config", None):  # packed weights: shapes differ by design
        return
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    want = {k: list(v.shape) for k, v in model.state_dict().items()}
    for file in sorted(path.glob("*.safetensors")):
        for name, v in _check_safetensors(file).items():
            if name in want and list(v["shape"]) != want[name]:
                raise CheckpointError(
                    f"checkpoint {path}: {file.name} holds {name} of shape {list(v['shape'])} but config.json makes it "
                    f"{want[name]}: config.json and the weights are of different models; re-save this checkpoint"
                )


def load_checkpoint(
    path: str | os.PathLike, dtype: str = "float32", trust_remote_code: bool = False
) -> tuple[torch.nn.Module, Any]:
    """Load a checkpoint directory (validated first) as ``(model, tokenizer)``."""
    import transformers

    from sweeps.models.build import _dtype

    path = check_checkpoint_dir(path)
    try:
        config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path / 'config.json'} is not a config transformers can read ({first_line(err)}): "
            "re-save or delete this checkpoint"
        ) from None
    _check_shapes(path, config, trust_remote_code)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint directory {path}: cannot load its tokenizer ({first_line(err)}): a "
            "checkpoint holds the tokenizer files too (tokenizer.save_pretrained)"
        ) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=_dtype(dtype), trust_remote_code=trust_remote_code, use_safetensors=True
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint directory {path}: cannot load the weights ({first_line(err)})") from None
    return model, tokenizer
