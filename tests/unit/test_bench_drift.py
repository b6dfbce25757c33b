"""bench/drift.py: the L2 distance between two checkpoints' weights (Step 10, hypothesis (c))."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

BENCH = Path(__file__).resolve().parents[2] / "bench" / "drift.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_drift", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ckpt(path: Path, **tensors) -> Path:
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    return path


def test_drift_is_the_l2_norm_over_every_tensor(tmp_path):
    a = _ckpt(tmp_path / "a", w=torch.zeros(2, 2), b=torch.zeros(3))
    b = _ckpt(tmp_path / "b", w=torch.tensor([[3.0, 0.0], [0.0, 0.0]]), b=torch.tensor([0.0, 4.0, 0.0]))
    assert _bench().drift(a, b) == pytest.approx(5.0)  # sqrt(3^2 + 4^2)
    assert _bench().drift(b, b) == 0.0


def test_drift_refuses_different_models(tmp_path):
    a = _ckpt(tmp_path / "a", w=torch.zeros(2))
    b = _ckpt(tmp_path / "b", v=torch.zeros(2))
    with pytest.raises(SystemExit, match="different weights"):
        _bench().drift(a, b)
