"""Known-answer tests for sweeps.spectral.metrics."""

import math

import pytest
import torch

from sweeps.spectral import (
    CONVENTION,
    best_match_alignment,
    check_k,
    principal_angles,
    projection_residual,
    random_orthonormal,
    random_subspace_baseline,
    residual_outside,
    sample_random_subspace_angles,
    subspace_distances,
    sv_drift,
    svd_error,
    top_k_svd,
    update_energy,
    update_spectrum,
)


def rotated_pair(n, k, theta, seed=0):
    """A = first k columns of a random orthogonal Q; B = A with column 0 rotated by theta towards column k."""
    Q = random_orthonormal(n, n, torch.Generator().manual_seed(seed))  # [n, n]
    A = Q[:, :k].clone()  # [n, k]
    B = A.clone()  # [n, k]
    B[:, 0] = math.cos(theta) * Q[:, 0] + math.sin(theta) * Q[:, k]
    return A, B


@pytest.mark.parametrize("theta", [0.3, 1e-3, 1e-5])
def test_single_plane_rotation_gives_that_angle(theta):
    A, B = rotated_pair(40, 6, theta)
    ang = principal_angles(A, B)
    assert ang.dtype == torch.float64 and ang.shape == (6,)
    assert ang[-1].item() == pytest.approx(theta, rel=1e-6)
    assert torch.all(ang[:-1].abs() < 1e-12)
    assert torch.all(ang[1:] >= ang[:-1])  # ascending


def test_several_planes_mixed_regimes():
    n, k = 30, 5
    Q = random_orthonormal(n, n, torch.Generator().manual_seed(4))  # [n, n]
    thetas = [1e-7, 0.5, 0.7853, 0.7854, 1.4]  # both sides of pi/4 (sine/cosine switch)
    A = Q[:, :k]
    B = torch.stack([math.cos(t) * Q[:, i] + math.sin(t) * Q[:, k + i] for i, t in enumerate(thetas)], 1)
    ang = principal_angles(A, B)
    assert torch.allclose(ang, torch.tensor(sorted(thetas), dtype=torch.float64), rtol=1e-8, atol=0)


def test_large_angles_near_pi_over_2():
    for theta in (1.2, math.pi / 2 - 1e-7, math.pi / 2):
        A, B = rotated_pair(30, 4, theta, seed=1)
        assert principal_angles(A, B)[-1].item() == pytest.approx(theta, rel=1e-9)


def test_identical_subspaces_give_zeros():
    A, _ = rotated_pair(50, 8, 0.0)
    O = random_orthonormal(8, 8, torch.Generator().manual_seed(3))  # [8, 8] change of basis
    assert torch.all(principal_angles(A, A) < 1e-12)
    assert torch.all(principal_angles(A, A @ O) < 1e-12)


def test_float32_inputs_work_where_float32_arccos_fails():
    theta = 1e-5
    n, k = 10, 3
    A = torch.eye(n, dtype=torch.float32)[:, :k]  # [n, k]
    B = A.clone()
    B[:, 0] = 0.0
    B[0, 0], B[k, 0] = math.cos(theta), math.sin(theta)  # stored in fp32
    naive = torch.arccos(torch.linalg.svdvals(A.T @ B).clamp(max=1.0)).min()  # fp32 pipeline
    assert abs(naive.item() - theta) / theta > 1e-2  # saturated: fp32 cos(1e-5) == 1
    ours = principal_angles(A, B)
    assert ours[-1].item() == pytest.approx(theta, rel=1e-6)
    assert torch.all(ours[:-1] == 0)


def test_numpy_inputs_and_fp64_arccos_floor():
    A, B = rotated_pair(20, 3, 1e-9)
    naive64 = torch.arccos(torch.linalg.svdvals(A.T @ B).clamp(max=1.0)).min()
    assert abs(naive64.item() - 1e-9) > 0.5e-9  # fp64 arccos is blind at 1e-9 too
    ang = principal_angles(A.numpy(), B.numpy())
    assert ang[-1].item() == pytest.approx(1e-9, rel=1e-5)


def test_k_at_or_above_n_raises_with_message():
    A = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"k=4 must be below n=4 .*share 2k-n dims.*k <= n/2"):
        principal_angles(A, A)
    with pytest.raises(ValueError, match=r"k=5 must be below n=4"):
        check_k(5, 4)
    with pytest.raises(ValueError, match=r"k=768 must be at most 0.5\*n for n=1024 .*k <= n/2"):
        check_k(768, 1024)
    check_k(512, 1024)
    check_k(768, 1024, allow=True)


def test_random_subspaces_mean_sin2_matches_baseline():
    k, n, trials = 8, 40, 200
    ang = sample_random_subspace_angles(k, n, trials, seed=0)  # [trials, k]
    per_trial = torch.sin(ang).pow(2).mean(dim=1)  # [trials]
    se = per_trial.std().item() / math.sqrt(trials)
    base = random_subspace_baseline(k, n)
    assert base["mean_sin2"] == pytest.approx(1 - k / n)
    assert abs(per_trial.mean().item() - base["mean_sin2"]) < 4 * se
    dc = torch.sqrt(per_trial).mean().item()
    assert dc == pytest.approx(base["chordal_normalised"], abs=0.02)


def test_forced_zero_angles_above_half():
    ang = sample_random_subspace_angles(6, 10, 3, seed=1)  # 2k-n = 2 forced zeros
    assert torch.all(ang[:, :2] < 1e-10) and torch.all(ang[:, 2:] > 1e-6)
    assert random_subspace_baseline(6, 10)["forced_zero_angles"] == 2


def test_orthogonal_subspaces_distances():
    n, k = 10, 3
    I = torch.eye(n, dtype=torch.float64)
    ang = principal_angles(I[:, :k], I[:, k : 2 * k])
    d = subspace_distances(ang, k, n)
    assert d["chordal_normalised"] == pytest.approx(1.0)
    assert d["chordal"] == pytest.approx(math.sqrt(k))
    assert d["projection_frobenius"] == pytest.approx(math.sqrt(2 * k))
    assert d["projection_2norm"] == pytest.approx(1.0)
    assert d["geodesic"] == pytest.approx(math.pi / 2 * math.sqrt(k))
    assert d["mean_angle"] == pytest.approx(math.pi / 2)
    assert d["chordal_normalised_random"] == pytest.approx(math.sqrt(1 - k / n))
    assert "chordal_normalised" in CONVENTION


def test_projection_frobenius_equals_projector_difference():
    A, _ = rotated_pair(30, 5, 0.0, seed=2)
    B = random_orthonormal(30, 5, torch.Generator().manual_seed(9))
    d = subspace_distances(principal_angles(A, B), 5, 30)
    direct = torch.linalg.norm(A @ A.T - B @ B.T).item()
    assert d["projection_frobenius"] == pytest.approx(direct, rel=1e-10)


def test_same_subspace_distances_exactly_zero():
    A, _ = rotated_pair(30, 5, 0.0)
    d = subspace_distances(principal_angles(A, A), 5, 30)
    assert d["chordal_normalised"] < 1e-12 and d["geodesic"] < 1e-12


def test_sv_drift_of_rescaled_matrix():
    W = torch.randn(20, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    S = torch.linalg.svdvals(W)
    out = sv_drift(S, torch.linalg.svdvals(1.1 * W))
    assert torch.allclose(out["rel"], torch.full_like(S, 0.1), atol=1e-12)
    assert out["mean_abs_rel"] == pytest.approx(0.1, abs=1e-12)
    assert out["n_excluded"] == 0


def test_sv_drift_zero_guard():
    out = sv_drift(torch.tensor([2.0, 0.0]), torch.tensor([3.0, 1.0]))
    assert out["rel"][0].item() == pytest.approx(0.5) and torch.isnan(out["rel"][1])
    assert out["mean_abs_rel"] == pytest.approx(0.5) and out["n_excluded"] == 1


def test_best_match_alignment():
    A, _ = rotated_pair(30, 4, 0.0)
    assert best_match_alignment(A, -A[:, [2, 0, 3, 1]]) == pytest.approx(1.0)


def test_update_energy_pure_reweighting():
    g = torch.Generator().manual_seed(0)
    U = random_orthonormal(16, 16, g)[:, :8]  # [16, 8]
    V = random_orthonormal(10, 10, g)[:, :8]  # [10, 8]
    W_ref = U @ torch.diag(torch.linspace(5, 1, 8, dtype=torch.float64)) @ V.T
    W_tgt = U @ torch.diag(torch.linspace(6, 0.5, 8, dtype=torch.float64)) @ V.T
    e = update_energy(W_ref, W_tgt, U, V)
    assert e["E_diag"] == pytest.approx(1.0, abs=1e-12)
    assert abs(e["E_rot"]) < 1e-12 and abs(e["E_outside"]) < 1e-12
    zero = update_energy(W_ref, W_ref, U, V)
    assert zero["E_diag"] == 0.0 and zero["total_sq"] == 0.0


def test_update_energy_rotation_and_outside():
    I = torch.eye(4, dtype=torch.float64)
    W_ref = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64))
    dW = torch.zeros(4, 4, dtype=torch.float64)
    dW[0, 1], dW[3, 3] = 1.0, 1.0  # one off-diagonal (rot), one outside top-2
    e = update_energy(W_ref, W_ref + dW, I[:, :2], I[:, :2])
    assert (e["E_diag"], e["E_rot"], e["E_outside"]) == pytest.approx((0.0, 0.5, 0.5))


def test_update_spectrum():
    W = torch.randn(12, 9, dtype=torch.float64)
    D = torch.zeros(12, 9, dtype=torch.float64)
    D[0, 0], D[1, 1] = 3.0, 2.0
    assert torch.allclose(update_spectrum(W, W + D, 3), torch.tensor([3.0, 2.0, 0.0], dtype=torch.float64), atol=1e-12)


def test_residuals():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(20, 15, dtype=torch.float64, generator=g)
    U, S, V = top_k_svd(W, 5)
    r = residual_outside(W, U, V, S)
    assert abs(r["residual"]) < 1e-12 and r["denominator"] == pytest.approx(S.pow(2).sum().item())
    res_sq, tot_sq = projection_residual(W, U, V)
    S_all = torch.linalg.svdvals(W)
    assert res_sq == pytest.approx(S_all[5:].pow(2).sum().item(), rel=1e-10)
    assert tot_sq == pytest.approx(S_all.pow(2).sum().item(), rel=1e-12)
    full_U, _, full_V = top_k_svd(W, 15)
    assert projection_residual(W, full_U, full_V)[0] < 1e-20


def test_randomized_svd_low_rank_plus_noise():
    g = torch.Generator().manual_seed(0)
    m, n, r = 300, 200, 20
    L = (
        random_orthonormal(m, r, g)
        @ torch.diag(torch.logspace(1, 0, r, dtype=torch.float64))
        @ random_orthonormal(n, r, g).T
    )
    W = L + 1e-3 * torch.randn(m, n, dtype=torch.float64, generator=g)
    err = svd_error(W, 10)
    assert err["sv_max_rel"] < 1e-6 and err["sv_rel_l2"] < 1e-6
    assert err["u_sin_max"] < 1e-3 and err["v_sin_max"] < 1e-3
    U, S, V = top_k_svd(W.float(), 10, method="randomized", seed=3)
    assert U.dtype == torch.float64 and U.shape == (m, 10) and S.shape == (10,) and V.shape == (n, 10)
    assert torch.allclose(U.T @ U, torch.eye(10, dtype=torch.float64), atol=1e-12)
