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
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the constructor sets it; undone after


def test_module_imports_without_vllm(no_vllm):
    module = importlib.import_module("sweeps.generation.vllm")
    assert module.VLLMRollout.is_policy is False
    assert sys.modules["vllm"] is None  # importing the module did not try to load vLLM


def test_building_without_vllm_raises_the_one_line_fix(no_vllm, tiny, monkeypatch):
    module = importlib.import_module("sweeps.generation.vllm")
    monkeypatch.setattr(
        module, "save_checkpoint", lambda *a, **k: pytest.fail("saved weights before checking for vLLM")
    )
    model, tok = tiny
    with pytest.raises(ImportError) as err:
        module.VLLMRollout(model, tok, OmegaConf.load(CONF / "rollout" / "vllm.yaml"))
    assert str(err.value) == MESSAGE
    assert "\n" not in str(err.value)


def test_building_without_cuda_says_so(monkeypatch, tiny):
    import torch

    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # vLLM "installed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    module = importlib.import_module("sweeps.generation.vllm")
    model, tok = tiny
    with pytest.raises(RuntimeError, match=r"needs a CUDA GPU .* \(or choose rollout=hf\)$"):
        module.VLLMRollout(model, tok, None)


def test_config_names_the_builder_and_every_engine_field():
    cfg = OmegaConf.load(CONF / "rollout" / "vllm.yaml")
    assert cfg.builder == "sweeps.generation.vllm.VLLMRollout"
    assert set(cfg) == {
        "builder",
        "gpu_memory_utilization",
        "dtype",
        "enforce_eager",
        "max_model_len",
        "engine_seed",
        "tensor_parallel_size",
        "enable_sleep_mode",
        "sleep_level",
    }
    from sweeps.generation.vllm import DEFAULTS

    assert set(DEFAULTS) == set(cfg) - {"builder"}  # every field is read by the constructor
    assert 0 < cfg.gpu_memory_utilization < 1 and cfg.dtype == "bfloat16" and cfg.enforce_eager is True


def test_tensor_parallel_engines_are_refused_before_anything_loads(no_vllm, tiny):
    module = importlib.import_module("sweeps.generation.vllm")
    cfg = OmegaConf.load(CONF / "rollout" / "vllm.yaml")
    cfg.tensor_parallel_size = 2
    with pytest.raises(ValueError) as err:
        module.VLLMRollout(*tiny, cfg)
    assert str(err.value) == (
        "rollout.tensor_parallel_size=2 is not built: each rank runs its own engine "
        "(tensor_parallel_size=1); shard the trainer with trainer/strategy=fsdp instead"
    )


class FakeLLM:
    """Records the sleep-mode calls VLLMRollout makes (no vLLM needed)."""

    def __init__(self):
        self.calls = []

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags)))

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def reset_prefix_cache(self):
        self.calls.append(("reset",))
        return True


def test_sleep_mode_wakes_weights_for_a_push_and_the_kv_cache_for_sampling(no_vllm):
    module = importlib.import_module("sweeps.generation.vllm")
    r = module.VLLMRollout.__new__(module.VLLMRollout)  # the state machine alone, no engine
    r.llm, r.sleep_level, r.asleep = FakeLLM(), 1, set()
    r._on_engine_model = lambda fn: r.llm.calls.append(("load",))
    with r.generating():  # awake from the start: no wake-up
        r.llm.calls.append(("generate",))
    r.sync_weights(object())  # after the update: weights back, then load
    with r.generating():
        r.llm.calls.append(("generate",))
    assert r.llm.calls == [
        ("generate",),
        ("sleep", 1),
        ("wake_up", ("weights",)),
        ("load",),
        ("reset",),
        ("wake_up", ("kv_cache",)),
        ("generate",),
        ("sleep", 1),
    ]
