"""Identity tests for sweeps.spectral.interventions (PAPER.md section 6, "A correct version")."""

import numpy as np
import pytest
import torch

from sweeps.spectral import (
    index_set,
    matched_rotation_angles,
    principal_angles,
    random_orthonormal,
    random_rotation_control,
    swap_components,
    top_k_svd,
)

M, N = 14, 9  # r = 9


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    W_B = torch.randn(M, N, dtype=torch.float64, generator=g)
    W_T = W_B + 0.3 * torch.randn(M, N, dtype=torch.float64, generator=g)
    return W_B, W_T


def svd(W):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return U, S, Vh.T


def test_index_set():
    assert index_set(10, top=3, tail=2).tolist() == [0, 1, 2, 8, 9]
    assert index_set(4, top=4).tolist() == [0, 1, 2, 3]
    assert index_set(5).numel() == 0
    with pytest.raises(ValueError):
        index_set(4, top=3, tail=2)


@pytest.mark.parametrize("mode", ["full", "direction", "sigma"])
def test_empty_set_returns_target(pair, mode):
    W_B, W_T = pair
    assert torch.equal(swap_components(W_B, W_T, [], mode=mode), W_T)
    out32 = swap_components(W_B.float(), W_T.float(), index_set(N), mode=mode)
    assert out32.dtype == torch.float32
    bf = swap_components(W_B.bfloat16(), W_T.bfloat16(), [], mode=mode)
    assert bf.dtype == torch.bfloat16 and torch.equal(bf, W_T.bfloat16())


def test_full_swap_all_gives_base(pair):
    W_B, W_T = pair
    assert torch.allclose(swap_components(W_B, W_T, index_set(N, top=N), "full"), W_B, atol=1e-12)


def test_direction_swap_all_gives_base_vectors_target_sigmas(pair):
    W_B, W_T = pair
    (Ub, _, Vb), (_, St, _) = svd(W_B), svd(W_T)
    out = swap_components(W_B, W_T, index_set(N, top=N), "direction")
    assert torch.allclose(out, Ub @ torch.diag(St) @ Vb.T, atol=1e-12)
    assert not torch.allclose(out, W_B, atol=1e-3)  # the original defect returned W_B here


def test_sigma_swap_all_gives_target_vectors_base_sigmas(pair):
    W_B, W_T = pair
    (_, Sb, _), (Ut, _, Vt) = svd(W_B), svd(W_T)
    out = swap_components(W_B, W_T, index_set(N, top=N), "sigma")
    assert torch.allclose(out, Ut @ torch.diag(Sb) @ Vt.T, atol=1e-12)


def test_full_swap_equals_mixed_basis_product(pair):
    W_B, W_T = pair
    (Ub, Sb, Vb), (Ut, St, Vt) = svd(W_B), svd(W_T)
    S = index_set(N, top=3, tail=2)  # mid = 3..6 stays from T
    U = Ut.clone()
    U[:, S] = Ub[:, S]
    V = Vt.clone()
    V[:, S] = Vb[:, S]
    sig = St.clone()
    sig[S] = Sb[S]
    mixed = U @ torch.diag(sig) @ V.T
    assert torch.allclose(swap_components(W_B, W_T, S, "full"), mixed, atol=1e-12)
    mixed_dir = U @ torch.diag(St) @ V.T  # direction-only keeps every sigma from T
    assert torch.allclose(swap_components(W_B, W_T, S, "direction"), mixed_dir, atol=1e-12)


def test_precomputed_and_numpy_inputs(pair):
    W_B, W_T = pair
    S = [0, 4]
    ref = swap_components(W_B, W_T, S, "full")
    pre = swap_components(W_B, W_T, S, "full", svd_ref=svd(W_B), svd_tgt=svd(W_T))
    assert torch.allclose(ref, pre, atol=1e-13)
    out_np = swap_components(W_B.numpy().astype(np.float32), W_T.numpy().astype(np.float32), S)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    assert np.allclose(out_np, ref.numpy(), atol=1e-5)


def test_bad_arguments(pair):
    W_B, W_T = pair
    with pytest.raises(ValueError):
        swap_components(W_B, W_T, [0], mode="bogus")
    with pytest.raises(ValueError):
        swap_components(W_B, W_T, [0, 0])
    with pytest.raises(ValueError):
        swap_components(W_B, W_T, [N])
    with pytest.raises(ValueError):
        swap_components(W_B, W_T[:, :-1], [0])


def low_rank_target(m=20, n=16, r=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    U, V = random_orthonormal(m, r, g), random_orthonormal(n, r, g)
    S = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    return U @ torch.diag(S) @ V.T, (U, S, V)


def test_random_rotation_zero_angle_is_identity(pair):
    _, W_T = pair
    assert torch.allclose(random_rotation_control(W_T, [0, 1, 2], 0.0), W_T, atol=1e-12)


def test_random_rotation_has_exactly_the_requested_angles():
    W_T, (U, S, V) = low_rank_target()
    theta_u = torch.tensor([0.1, 0.2, 0.3, 0.05, 0.4], dtype=torch.float64)
    out = random_rotation_control(W_T, index_set(5, top=5), (theta_u, 0.25), seed=1, svd_tgt=(U, S, V))
    U2, S2, V2 = top_k_svd(out, 5)
    assert torch.allclose(S2, S, atol=1e-12)  # orthonormal rotation: spectrum unchanged
    assert torch.allclose(principal_angles(U, U2), theta_u.sort().values, atol=1e-10)
    assert torch.allclose(principal_angles(V, V2), torch.full((5,), 0.25, dtype=torch.float64), atol=1e-10)
    th_u, th_v = matched_rotation_angles(out, W_T, range(5))
    assert torch.allclose(th_u, theta_u.sort().values, atol=1e-10)
    assert torch.allclose(th_v, torch.full((5,), 0.25, dtype=torch.float64), atol=1e-10)


def test_random_rotation_seeded_and_dtype(pair):
    _, W_T = pair
    a = random_rotation_control(W_T.float(), [0, 1], 0.1, seed=0)
    b = random_rotation_control(W_T.float(), [0, 1], 0.1, seed=0)
    c = random_rotation_control(W_T.float(), [0, 1], 0.1, seed=1)
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)


def test_random_rotation_rejects_impossible_sizes(pair):
    _, W_T = pair
    with pytest.raises(ValueError):  # 9 rotated directions, only n-s = 0 complement dims on V
        random_rotation_control(W_T, index_set(N, top=N), 0.1)
    with pytest.raises(ValueError):
        random_rotation_control(W_T, [0, 1], 2.0)  # > pi/2
