"""Every spectral metric and decomposition method in conf/ builds, and the defaults name them."""

from __future__ import annotations

import pytest
import torch

from sweeps.spectral import components
from sweeps.spectral.options import Options


@pytest.mark.parametrize("name", components.available("spectral_metric"))
def test_every_metric_config_builds_a_function_with_valid_reads(name):
    metric = components.metric(name)
    assert callable(metric.fn) and set(metric.reads) <= set(components.SIDES)


def test_default_metrics_and_methods_have_configs():
    assert set(Options().metrics) <= set(components.available("spectral_metric"))
    assert {"full", "eigh", "randomized"} <= set(components.available("spectral_method"))


@pytest.mark.parametrize("name", components.available("spectral_method"))
def test_every_method_config_builds_a_top_k_decomposition(name):
    W = torch.randn(12, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # [m, n]
    U, S, V = components.method(name)(W, 3, Options(k=3))
    assert U.shape == (12, 3) and S.shape == (3,) and V.shape == (20, 3)
    assert torch.allclose(S, torch.linalg.svdvals(W)[:3], rtol=1e-2)


def test_unknown_name_is_one_line_naming_the_file():
    with pytest.raises(ValueError) as err:
        components.metric("nope")
    message = str(err.value)
    assert "\n" not in message and "spectral_metric/nope.yaml" in message and "angles" in message
