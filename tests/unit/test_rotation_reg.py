"""The rotation-preserving SFT penalties: hand-checked values, finite-difference gradients, the
regulariser object, and λ = 0 leaving SFT bit for bit unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sweeps.modules.rotation_reg import RotationRegulariser, angle_penalty, block_penalty
from sweeps.runs import rotation_variant, signature, split_variant, with_variant
from sweeps.spectral import principal_angles


def test_block_penalty_by_hand():
    # W0 = diag(3, 2, 1) (3 x 4), k = 1: U0 = e1, V0 = e1, C0 = [[3]], so R(W) = (W11 - 3)^2
    W0 = torch.zeros(3, 4, dtype=torch.float64)
    W0[0, 0], W0[1, 1], W0[2, 2] = 3.0, 2.0, 1.0
    U0, V0 = torch.eye(3, 1, dtype=torch.float64), torch.eye(4, 1, dtype=torch.float64)
    C0 = U0.T @ W0 @ V0
    assert C0.item() == 3.0 and block_penalty(W0, U0, V0, C0).item() == 0.0
    W = W0.clone()
    W[0, 0] += 0.5  # inside the top block: counts
    W[0, 1] += 1.0  # outside it: does not
    W[2, 3] -= 2.0
    W.requires_grad_(True)
    R = block_penalty(W, U0, V0, C0)
    assert R.item() == 0.25  # (3.5 - 3)^2
    R.backward()
    expected = torch.zeros(3, 4, dtype=torch.float64)
    expected[0, 0] = 1.0  # dR/dW11 = 2 (3.5 - 3)
    assert torch.equal(W.grad, expected)


def _bases(W: torch.Tensor, k: int):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return U[:, :k], S[:k], Vh[:k].T


def test_penalties_vanish_at_the_base_with_zero_gradient():
    torch.manual_seed(0)
    W0 = torch.randn(8, 6, dtype=torch.float64)
    U0, S0, V0 = _bases(W0, 2)
    W = W0.clone().requires_grad_(True)
    for p in (block_penalty(W, U0, V0, U0.T @ W0 @ V0), angle_penalty(W, U0, V0, U0, S0, V0)):
        assert abs(p.item()) < 1e-24
        (g,) = torch.autograd.grad(p, W)
        assert g.abs().max().item() < 1e-12


@pytest.mark.parametrize("which", ["block", "angle"])
def test_gradient_matches_finite_differences(which):
    torch.manual_seed(1)
    W0 = torch.randn(7, 5, dtype=torch.float64)
    U0, S0, V0 = _bases(W0, 2)
    W1 = W0 + 0.3 * torch.randn(7, 5, dtype=torch.float64)  # away from W0: a non-zero gradient
    Ut, St, Vt = _bases(W1, 2)
    fn = {
        "block": lambda W: block_penalty(W, U0, V0, U0.T @ W0 @ V0),
        "angle": lambda W: angle_penalty(W, U0, V0, Ut, St, Vt),
    }[which]
    W = W1.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (W,), eps=1e-6, atol=1e-7)
    (g,) = torch.autograd.grad(fn(W), W)
    assert g.abs().max().item() > 1e-3  # a gradient that can be wrong


def test_angle_penalty_is_the_squared_chordal_distance_at_a_refresh():
    torch.manual_seed(2)
    W0 = torch.randn(9, 7, dtype=torch.float64)
    U0, _, V0 = _bases(W0, 3)
    W = W0 + 0.5 * torch.randn(9, 7, dtype=torch.float64)
    Ut, St, Vt = _bases(W, 3)
    expected = sum(principal_angles(A, B).sin().pow(2).sum().item() for A, B in ((U0, Ut), (V0, Vt)))
    assert expected > 0.05
    assert angle_penalty(W, U0, V0, Ut, St, Vt).item() == pytest.approx(expected, rel=1e-10)


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(12, 16), nn.Linear(16, 10)


@pytest.mark.parametrize("variant", ["block", "angle"])
def test_regulariser_zero_at_start_positive_after_a_move_and_resumable(variant):
    model = TwoLayers()
    reg = RotationRegulariser(model, [r"\.weight$"], k=3, variant=variant, refresh=2)
    assert reg.names == ["a.weight", "b.weight"]
    assert reg.penalty(model, 0).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        model.a.weight.add_(0.3 * torch.randn_like(model.a.weight))
    r1 = reg.penalty(model, 2)  # angle: re-estimates the bases at step 2
    assert r1.item() > 1e-3 and r1.requires_grad
    state = reg.state_dict()
    fresh = RotationRegulariser(TwoLayers(), [r"\.weight$"], k=3, variant=variant, refresh=2)
    fresh.load_state_dict(state)
    assert fresh.penalty(model, 3).item() == pytest.approx(reg.penalty(model, 3).item(), rel=1e-6)


def test_regulariser_refuses_bad_k_and_no_targets():
    with pytest.raises(ValueError, match="algo.rotation_reg.k=9"):
        RotationRegulariser(TwoLayers(), [r"\.weight$"], k=9)
    with pytest.raises(ValueError, match="no trainable 2-D parameter"):
        RotationRegulariser(TwoLayers(), ["nothing"], k=2)


def test_run_identity_of_a_variant():
    off = {"lam": 0.0, "k": 16, "variant": "block", "refresh": 10, "n_iter": 2}
    on = {**off, "lam": 0.1}
    assert rotation_variant(off) == "" and rotation_variant(None) == ""
    assert rotation_variant(on) == "rotreg_block_k16_lam0.1"
    assert rotation_variant({**on, "variant": "angle", "lam": 1e-5}) == "rotreg_angle_k16_lam1e-05_r10"
    assert with_variant("base", "") == "base" and split_variant("base") == ("base", "")
    assert split_variant(with_variant("base", "rotreg_block_k16_lam0.1")) == ("base", "rotreg_block_k16_lam0.1")
    from sweeps.jobs.sft import semantic_config  # the SFT job decides what its settings mean

    def sig(resolved):
        return signature(semantic_config(None, resolved))

    cfg = {"study": "s", "algo": {"name": "sft", "lr": 1e-3}}
    plain = sig(cfg)
    assert sig({**cfg, "algo": {**cfg["algo"], "rotation_reg": {**off, "k": 4}}}) == plain  # off: plain SFT
    assert sig({**cfg, "algo": {**cfg["algo"], "rotation_reg": on}}) != plain


def test_lambda_zero_with_the_penalty_computed_is_bit_for_bit_plain_sft(tiny):
    """λ = 0 adds 0 * R: the tiny model's losses and weights after 3 AdamW steps are identical."""
    import lightning as L
    from omegaconf import OmegaConf

    from sweeps.models.build import build
    from sweeps.modules.data import SFTStream
    from sweeps.modules.sft import SFTModule
    from sweeps.tasks.general_points import GeneralPoints
    from tests.conftest import CONF

    algo = OmegaConf.load(CONF / "algo" / "sft.yaml")
    algo.pop("defaults")  # the optimizer group it names, merged by hand
    algo = OmegaConf.merge({"optimizer": OmegaConf.load(CONF / "algo" / "optimizer" / "adamw.yaml")}, algo)
    task_cfg = {
        k: v
        for k, v in OmegaConf.to_container(OmegaConf.load(CONF / "task" / "general_points_compact.yaml")).items()
        if k not in ("defaults", "_target_")
    }
    targets = list(OmegaConf.load(CONF / "model" / "tiny.yaml").spectral_targets)

    def fit(force: bool, lam: float):
        algo.rotation_reg.lam = lam
        L.seed_everything(0, verbose=False)
        model, tok = build(OmegaConf.load(CONF / "model" / "tiny.yaml"))
        module = SFTModule(model, algo, 3, targets)
        if force:  # the penalty computed and added with weight 0
            module.reg = RotationRegulariser(model, targets, k=16)
        losses = []

        class Keep(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                losses.append((pl_module.step_metrics["train/loss"], pl_module.step_metrics.get("train/rotation_reg")))

        stream = SFTStream(GeneralPoints(**task_cfg), tok, 0, 8, start_batch=lambda: 0)
        trainer = L.Trainer(
            max_steps=3,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            callbacks=[Keep()],
            gradient_clip_val=1.0,
        )
        from sweeps.jobs.common import loader

        trainer.fit(module, loader(stream))
        return losses, {n: p.detach().clone() for n, p in model.named_parameters()}

    plain_losses, plain_w = fit(False, 0.0)
    zero_losses, zero_w = fit(True, 0.0)
    on_losses, on_w = fit(True, 100.0)
    assert [l for l, _ in zero_losses] == [l for l, _ in plain_losses]
    assert all(torch.equal(plain_w[n], zero_w[n]) for n in plain_w)
    assert zero_losses[0][1] == pytest.approx(0.0, abs=1e-6) and zero_losses[-1][1] > 0  # computed, weight 0
    assert not all(torch.equal(plain_w[n], on_w[n]) for n in plain_w)  # λ > 0 does act
    assert math.isfinite(on_losses[-1][1])


def test_the_ablation_study_watches_one_directory_per_setting_and_seed():
    from sweeps.driver import stage_commands, stage_runs
    from tests.conftest import compose

    cfg = compose(["experiment=rotation_ablation", "paths.output_dir=/o"])
    ((stage, argv),) = stage_commands(cfg, "local", [], None)
    assert stage == "sft" and "algo.rotation_reg.lam=0,0.1,1" in argv
    runs = [str(p.relative_to("/o/rotation_ablation/sft/tiny_base/general_points_tiny")) for p in stage_runs(cfg, argv)]
    assert runs == [
        f"{init}/seed={s}"
        for init in ("base", "base+rotreg_block_k16_lam0.1", "base+rotreg_block_k16_lam1")
        for s in (0, 1, 2)
    ]
    angle = compose(["experiment=rotation_ablation", "paths.output_dir=/o", "algo.rotation_reg.variant=angle"])
    assert [p.parent.name for p in stage_runs(angle, argv)][3] == "base+rotreg_angle_k16_lam0.1_r10"
