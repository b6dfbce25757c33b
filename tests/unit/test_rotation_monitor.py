"""RotationMonitor on a tiny nn.Linear model trained a few steps with Lightning."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn

from sweeps.modules.rotation_monitor import RotationMonitor
from sweeps.spectral import principal_angles, top_k_svd

K = 3


class Tiny(L.LightningModule):
    """Two linear layers regressing a fixed random map; lr decides how far the weights move."""

    def __init__(self, lr: float):
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(16, 24), nn.Tanh(), nn.Linear(24, 12))
        self.target = torch.randn(16, 12)
        self.lr = lr

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return (self.model(x) - x @ self.target).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def fit(lr: float, steps: int = 6, every: int = 2, reference: str = "start"):
    records: list[tuple[int, dict]] = []
    module = Tiny(lr)
    start = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    monitor = RotationMonitor(
        lambda step, m: records.append((step, m)),
        every_n_steps=every,
        targets=[r"^\d\.weight$"],
        k=K,
        reference=reference,
        n_iter=3,
    )
    data = torch.utils.data.TensorDataset(torch.randn(64, 16, generator=torch.Generator().manual_seed(1)))
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[monitor],
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
    return records, module, start


def test_records_every_n_steps_with_namespaced_keys():
    records, _, _ = fit(lr=0.5)
    assert [s for s, _ in records] == [2, 4, 6]
    keys = set(records[-1][1])
    assert {
        "rotation/angle_mean",
        "rotation/chordal_normalised",
        "rotation/0/u_angle_mean",
        "rotation/2/v_chordal_normalised",
    } <= keys
    assert all(0 <= v <= math.pi / 2 for _, m in records for v in m.values())


def test_rotation_rises_and_matches_the_exact_offline_angle():
    records, module, start = fit(lr=0.5)
    means = [m["rotation/angle_mean"] for _, m in records]
    assert means[0] > 0 and means[-1] > means[0]  # rotation accumulates from the start reference
    for idx in ("0", "2"):  # exact: full SVD of the start and the final weights
        U0, _, V0 = top_k_svd(start[f"{idx}.weight"], K, "full")
        U1, _, V1 = top_k_svd(module.model.get_parameter(f"{idx}.weight").detach(), K, "full")
        got = records[-1][1]
        assert got[f"rotation/{idx}/u_angle_mean"] == pytest.approx(
            principal_angles(U0, U1).mean().item(), rel=1e-3, abs=1e-6
        )
        assert got[f"rotation/{idx}/v_angle_mean"] == pytest.approx(
            principal_angles(V0, V1).mean().item(), rel=1e-3, abs=1e-6
        )


def test_frozen_weights_give_zero_rotation():
    records, _, _ = fit(lr=0.0)
    assert all(abs(v) < 1e-10 for _, m in records for v in m.values())


def test_previous_reference_measures_rotation_since_the_last_measurement():
    since_start, _, _ = fit(lr=0.5)
    since_prev, _, _ = fit(lr=0.5, reference="previous")
    assert since_prev[0][1]["rotation/angle_mean"] == pytest.approx(since_start[0][1]["rotation/angle_mean"])
    assert since_prev[-1][1]["rotation/angle_mean"] < since_start[-1][1]["rotation/angle_mean"]


def test_bad_k_and_targets_fail_at_train_start():
    module = Tiny(0.1)
    with pytest.raises(ValueError, match="k=7 must be"):
        RotationMonitor(print, 2, [r"^2\.weight$"], k=7).on_train_start(None, module)  # 12 rows: k <= 6
    with pytest.raises(ValueError, match="no 2-D parameter matches"):
        RotationMonitor(print, 2, [r"gate_proj"], k=2).on_train_start(None, module)
