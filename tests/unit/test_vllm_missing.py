"""rollout=vllm without vLLM (or without CUDA) fails at construction with a one-line fix."""

import importlib
import sys
import types

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF

MESSAGE = "rollout=vllm needs vLLM on a CUDA machine: pip install '.[vllm]' (or choose rollout=hf)"


@pytest.fixture
def no_vllm(monkeypatch):
    """Make ``import vllm`` fail even where vLLM (or a stub) is installed."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.delitem(sys.modules, "sweeps.generation.vllm", raising=False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")   # the constructor sets it; undone after


def test_module_imports_without_vllm(no_vllm):
    module = importlib.import_module("sweeps.generation.vllm")
    assert module.VLLMRollout.is_policy is False
    assert sys.modules["vllm"] is None      # importing the module did not try to load vLLM


def test_building_without_vllm_raises_the_one_line_fix(no_vllm, tiny, monkeypatch):
    module = importlib.import_module("sweeps.generation.vllm")
    monkeypatch.setattr(module, "save_checkpoint", lambda *a, **k: pytest.fail("saved weights before checking for vLLM"))
    model, tok = tiny
    with pytest.raises(ImportError) as err:
        module.VLLMRollout(model, tok, OmegaConf.load(CONF / "rollout" / "vllm.yaml"))
    assert str(err.value) == MESSAGE
    assert "\n" not in str(err.value)


def test_building_without_cuda_says_so(monkeypatch, tiny):
    import torch

    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))   # vLLM "installed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    module = importlib.import_module("sweeps.generation.vllm")
    model, tok = tiny
    with pytest.raises(RuntimeError, match=r"needs a CUDA GPU .* \(or choose rollout=hf\)$"):
        module.VLLMRollout(model, tok, None)


def test_config_names_the_builder_and_every_engine_field():
    cfg = OmegaConf.load(CONF / "rollout" / "vllm.yaml")
    assert cfg.builder == "sweeps.generation.vllm.VLLMRollout"
    assert set(cfg) == {"builder", "gpu_memory_utilization", "dtype", "enforce_eager", "max_model_len", "engine_seed"}
    assert 0 < cfg.gpu_memory_utilization < 1 and cfg.dtype == "bfloat16" and cfg.enforce_eager is True
