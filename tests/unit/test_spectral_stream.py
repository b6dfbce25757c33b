"""Known answers for the streaming spectral comparison on synthetic checkpoints (the stage: test_spectral_io.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sweeps.spectral import random_orthonormal
from sweeps.spectral.cache import SVDCache
from sweeps.spectral.checkpoints import Checkpoint, select_targets
from sweeps.spectral.decompositions import METHODS, decompose
from sweeps.spectral.options import Options
from sweeps.spectral.stream import compare

Q_NAME, D_NAME = "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"
K = 4


def spectrum(r: int) -> torch.Tensor:
    """Distinct top-K values 10, 9, 8, 7 then a fast decay from 1: a wide gap at K, so every method is exact."""
    return torch.cat([torch.tensor([10.0, 9.0, 8.0, 7.0]), 0.5 ** torch.arange(r - K, dtype=torch.float64)])


def synthetic(m: int, n: int, seed: int):
    """W = U diag(s) Vᵀ with Haar U [m, m], V [n, n]; returns (W, U, s, V)."""
    g = torch.Generator().manual_seed(seed)
    U, V, s = random_orthonormal(m, m, g), random_orthonormal(n, n, g), spectrum(min(m, n))
    return U[:, : s.numel()] * s @ V[:, : s.numel()].T, U, s, V  # [m, n]


def plane_rotation(U: torch.Tensor, i: int, j: int, theta: float) -> torch.Tensor:
    """R [m, m] rotating u_i towards u_j by theta and leaving the orthogonal complement fixed."""
    ui, uj = U[:, i : i + 1], U[:, j : j + 1]  # [m, 1]
    c, s = math.cos(theta), math.sin(theta)
    return (
        torch.eye(U.shape[0], dtype=torch.float64) + (c - 1) * (ui @ ui.T + uj @ uj.T) + s * (uj @ ui.T - ui @ uj.T)
    )  # [m, m]


def write_ckpt(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "model.safetensors"))
    return path


@pytest.fixture
def base(tmp_path):
    Wq, Uq, _, _ = synthetic(32, 32, 0)
    Wd, _, _, _ = synthetic(32, 96, 1)
    return tmp_path, {Q_NAME: Wq, D_NAME: Wd}, Uq


def run_compare(tmp_path, ref, tgt, method="eigh", **kw):
    a, b = write_ckpt(tmp_path / "a", ref), write_ckpt(tmp_path / "b", tgt)
    opts = Options(k=K, method=method, **kw)
    rows = compare(Checkpoint(a), Checkpoint(b), sorted(ref), SVDCache(opts), opts)
    return {r["name"]: r for r in rows}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("theta", [0.3, 1e-5])
def test_rotation_in_one_plane_reports_that_angle(base, method, theta):
    # R rotates u_1 (inside the top-4 subspace) towards u_6 (outside): exactly one left
    # principal angle equals theta, the other three and all right angles are 0, and R is
    # orthogonal, so the singular values (drift) do not move.
    tmp_path, ref, Uq = base
    tgt = dict(ref, **{Q_NAME: plane_rotation(Uq, 1, 6, theta) @ ref[Q_NAME]})
    rows = run_compare(tmp_path, ref, tgt, method)
    q = rows[Q_NAME]
    assert q["u_angle_max"] == pytest.approx(theta, rel=1e-6)
    assert q["u_angle_mean"] == pytest.approx(theta / K, rel=1e-6)
    assert q["u_geodesic"] == pytest.approx(theta, rel=1e-6)
    assert q["u_chordal_normalised"] == pytest.approx(math.sin(theta) / 2, rel=1e-6)  # sqrt(sin²θ / 4)
    assert q["v_angle_max"] < 1e-9 and q["sv_drift"] < 1e-9
    assert rows[D_NAME]["u_angle_max"] < 1e-10 and rows[D_NAME]["update_norm"] == 0.0
    assert (q["layer"], q["matrix"], q["m"], q["n"], q["k"]) == (0, "q_proj", 32, 32, K)


def test_identical_checkpoints_give_zeros(base):
    tmp_path, ref, _ = base
    for row in run_compare(tmp_path, ref, dict(ref)).values():
        for key in (
            "u_angle_mean",
            "u_angle_max",
            "v_angle_mean",
            "v_geodesic",
            "u_chordal_normalised",
            "v_projection_frobenius",
            "residual_outside",
        ):
            assert abs(row[key]) < 1e-12, key
        assert row["sv_drift"] == 0.0 and row["update_norm"] == 0.0 and row["update_sv1"] == 0.0
        assert row["E_diag"] == row["E_rot"] == row["E_outside"] == 0.0
        assert row["u_best_match"] == pytest.approx(1.0, abs=1e-12)
        assert row["u_chordal_random"] == pytest.approx(math.sqrt(1 - K / row["m"]))  # baseline next to it


@pytest.mark.parametrize("scale", [1.5, 0.9])
def test_rescaled_matrix_drifts_by_exactly_the_scale(base, scale):
    # σ_i(cW) = c σ_i(W), so mean |Δσ|/σ = |c - 1| and the subspaces do not move.
    tmp_path, ref, _ = base
    row = run_compare(tmp_path, ref, {k: scale * v for k, v in ref.items()}, "full")[D_NAME]
    assert row["sv_drift"] == pytest.approx(abs(scale - 1), rel=1e-12)
    assert row["u_angle_max"] < 1e-10 and row["v_angle_max"] < 1e-10
    # ΔW = (c-1)W, so C = U_kᵀ ΔW V_k = (c-1) diag(s_1..s_4): E_diag = Σ_{i≤4} s_i² / Σ s_i², E_rot = 0
    s = spectrum(32)
    assert row["E_diag"] == pytest.approx((s[:K].pow(2).sum() / s.pow(2).sum()).item(), rel=1e-10)
    assert abs(row["E_rot"]) < 1e-12
    assert row["update_rel"] == pytest.approx(abs(scale - 1), rel=1e-12)


def test_methods_agree_and_eigh_is_exact():
    W, _, s, _ = synthetic(40, 24, 3)
    W = W + 1e-3 * torch.randn(40, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    opts = Options(k=K)
    Uf, Sf, Vf = decompose(W, K, opts, "full")
    for method in METHODS:
        U, S, V = decompose(W, K, opts, method)
        assert torch.allclose(S, Sf, rtol=1e-10)
        assert torch.allclose((U.T @ Uf).abs(), torch.eye(K, dtype=torch.float64), atol=1e-9)
        assert torch.allclose((V.T @ Vf).abs(), torch.eye(K, dtype=torch.float64), atol=1e-9)


# --- bad input: one-line errors -----------------------------------------------------------------
def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("k", [32, 17])
def test_k_too_large_is_one_line(base, k):
    tmp_path, ref, _ = base
    with pytest.raises(ValueError) as err:
        _compare_k(tmp_path, ref, k)
    assert f"k={k}" in one_line(err) and "n=32" in str(err.value)


def _compare_k(tmp_path, ref, k):
    a = write_ckpt(tmp_path / "a", ref)
    opts = Options(k=k)
    return compare(Checkpoint(a), Checkpoint(a), sorted(ref), SVDCache(opts), opts)


def test_clip_k_lowers_k_per_matrix(base):
    tmp_path, ref, _ = base
    a = write_ckpt(tmp_path / "a", ref)
    opts = Options(k=40, clip_k=True)
    rows = compare(Checkpoint(a), Checkpoint(a), sorted(ref), SVDCache(opts), opts)
    assert {r["k"] for r in rows} == {16}


def test_regex_matching_nothing_is_one_line(base):
    tmp_path, ref, _ = base
    ckpt = Checkpoint(write_ckpt(tmp_path / "a", ref))
    assert select_targets(ckpt.names(), [r"q_proj\.weight"], ckpt.path) == [Q_NAME]
    with pytest.raises(ValueError) as err:
        select_targets(ckpt.names(), [r"q_proj", r"gate_proj\.weight"], ckpt.path)
    msg = one_line(err)
    assert "gate_proj" in msg and "matches no parameter" in msg and Q_NAME in msg


def test_checkpoints_of_different_shapes_are_one_line(base):
    tmp_path, ref, _ = base
    with pytest.raises(ValueError) as err:
        run_compare(tmp_path, ref, dict(ref, **{Q_NAME: torch.zeros(16, 32, dtype=torch.float64)}))
    msg = one_line(err)
    assert Q_NAME in msg and str(tmp_path / "a" / "model.safetensors") in msg
    assert str(tmp_path / "b" / "model.safetensors") in msg


def test_cache_decomposes_each_checkpoint_once_and_persists(base):
    tmp_path, ref, _ = base
    a = Checkpoint(write_ckpt(tmp_path / "a", ref))
    opts = Options(k=K)
    cache = SVDCache(opts, tmp_path / "cache")
    first = cache.get(a, Q_NAME)
    assert cache.get(a, Q_NAME) is first and cache.computed == 1
    cache.persist(a)
    fresh = SVDCache(opts, tmp_path / "cache")
    again = fresh.get(a, Q_NAME)
    assert fresh.computed == 0 and torch.equal(again[0], first[0])
    assert SVDCache(Options(k=K + 1), tmp_path / "cache").get(a, Q_NAME)[1].numel() == K + 1  # k is in the key


# --- the eigh method's pieces: top-k eigensolver, Gram slabs, storage dtypes ------------------------
def test_top_eigh_returns_the_known_top_eigenpairs():
    # G = Q diag(lam) Qᵀ with a known spectrum, including a close pair (1 + 1e-9, 1) inside the
    # top k and a gap of 1e-6 right at k: the top-4 values are exactly 5, 3, 1 + 1e-9, 1 and the
    # vectors span Q[:, :4] (the eigenvalue order fixes which columns).
    from sweeps.spectral.lapack import _top_eigh

    n = 40
    Q = random_orthonormal(n, n, torch.Generator().manual_seed(7))  # [n, n]
    lam = torch.cat(
        [
            torch.tensor([5.0, 3.0, 1.0 + 1e-9, 1.0, 1.0 - 1e-6], dtype=torch.float64),
            torch.linspace(0.5, 0.0, n - 5, dtype=torch.float64),
        ]
    )
    G = Q * lam @ Q.T  # [n, n]
    for overwrite in (False, True):
        vals, vecs = _top_eigh(G.clone(), 4, overwrite=overwrite)  # [4], [n, 4]
        assert torch.allclose(vals, lam[:4], rtol=0, atol=1e-13)
        assert torch.allclose(vecs.T @ vecs, torch.eye(4, dtype=torch.float64), atol=1e-12)
        # the 1e-6 gap to the 5th eigenvalue bounds the subspace error by ~1e-16 / 1e-6
        assert torch.linalg.svdvals(Q[:, 4:].T @ vecs).max() < 1e-8
        assert torch.allclose((vecs[:, :2].T @ Q[:, :2]).abs(), torch.eye(2, dtype=torch.float64), atol=1e-12)


def test_top_eigh_reads_only_the_upper_triangle_and_small_sizes_fall_back():
    from sweeps.spectral.lapack import _top_eigh

    G = torch.tensor([[2.0, 1.0, 0.0], [99.0, 2.0, 0.0], [99.0, 99.0, 1.0]], dtype=torch.float64)  # lower = junk
    vals, vecs = _top_eigh(G, 1)  # upper triangle: [[2, 1, 0], [1, 2, 0], [0, 0, 1]] -> top pair 3, (1, 1, 0)/√2
    assert vals.item() == pytest.approx(3.0, abs=1e-14)
    assert vecs[:, 0].abs().tolist() == pytest.approx([2**-0.5, 2**-0.5, 0.0], abs=1e-14)
    vals2, vecs2 = _top_eigh(torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64), 1)  # r <= 2: scipy
    assert vals2.item() == pytest.approx(3.0) and vecs2[:, 0].abs().tolist() == pytest.approx([1.0, 0.0], abs=1e-14)


@pytest.mark.parametrize("shape", [(24, 70), (70, 24)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_eigh_on_stored_dtypes_in_slabs_equals_the_full_svd(monkeypatch, shape, dtype):
    # A float32 / bf16 W is never converted whole: with 64-element slabs, W [24, 70] takes two
    # slabs of the long side, in either orientation; the triplets equal the float64 full SVD of
    # the same (exactly representable) values.
    import sweeps.spectral.lapack as st

    monkeypatch.setattr(st, "BLOCK_ELEMENTS", 64 * 24)  # slab = 64 rows/columns of the long side
    W, _, _, _ = synthetic(*shape, 5)
    W = W.to(dtype)  # [m, n] as stored
    U, S, V = decompose(W, K, Options(k=K), "eigh")
    Uf, Sf, Vf = decompose(W.double(), K, Options(k=K), "full")
    assert U.dtype == S.dtype == V.dtype == torch.float64
    assert torch.allclose(S, Sf, rtol=1e-12, atol=0)
    assert torch.allclose((U.T @ Uf).abs(), torch.eye(K, dtype=torch.float64), atol=1e-11)
    assert torch.allclose((V.T @ Vf).abs(), torch.eye(K, dtype=torch.float64), atol=1e-11)


def test_slabs_grow_to_the_gram_size_only_with_more_blas_threads():
    from sweeps.spectral.lapack import BLOCK_ELEMENTS, slab_elements

    assert BLOCK_ELEMENTS == 1 << 17  # 1 MB of float64
    assert slab_elements(512, 1) == BLOCK_ELEMENTS  # one thread: 1 MB whatever the size
    assert slab_elements(512, 2) == 512 * 512  # threads: as large as the Gram matrix [512, 512]
    assert slab_elements(100, 8) == BLOCK_ELEMENTS  # never below 1 MB


@pytest.mark.parametrize("shape", [(24, 300), (300, 24)])
def test_eigh_with_two_blas_threads_equals_the_full_svd_and_restores_the_thread_count(monkeypatch, shape):
    # With 2 BLAS threads (and 64-line slabs: 5 of the long side of 300) the small-k eigensolver
    # steps run on one thread, the count is 2 again afterwards, and the triplets still equal the
    # float64 full SVD.
    import threadpoolctl  # a declared dependency: a missing one is a failure, not a skip

    import sweeps.spectral.lapack as st

    monkeypatch.setattr(st, "BLOCK_ELEMENTS", 64 * 24)
    W, _, _, _ = synthetic(*shape, 5)
    W = W.float()  # [m, n] as stored
    with threadpoolctl.threadpool_limits(2):
        assert st.blas_threads() == 2
        with st._one_blas_thread():
            assert st.blas_threads() == 1
        assert st.blas_threads() == 2
        U, S, V = decompose(W, K, Options(k=K), "eigh")
        assert st.blas_threads() == 2
    Uf, Sf, Vf = decompose(W.double(), K, Options(k=K), "full")
    assert torch.allclose(S, Sf, rtol=1e-12, atol=0)
    assert torch.allclose((U.T @ Uf).abs(), torch.eye(K, dtype=torch.float64), atol=1e-11)
    assert torch.allclose((V.T @ Vf).abs(), torch.eye(K, dtype=torch.float64), atol=1e-11)


def test_eigh_of_a_rank_deficient_matrix_falls_back_to_the_svd():
    W = torch.zeros(10, 30, dtype=torch.float32)
    W[0, 0], W[1, 1] = 2.0, 1.0  # rank 2 < k = 4
    U, S, V = decompose(W, K, Options(k=K), "eigh")
    assert S.tolist()[:2] == pytest.approx([2.0, 1.0], abs=1e-14) and S[2:].abs().max() < 1e-14
    assert U[:2, :2].abs().tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_angles_only_loads_each_matrix_once_as_stored(base, monkeypatch):
    # metrics [angles]: W_ref / W_tgt are never loaded in float64, the reference is loaded once
    # per name (then cached), a target once per comparison; keep_target=False leaves the cache
    # with the reference only, and the rows equal those of the default (all metrics) path.
    tmp_path, ref, Uq = base
    tgt = dict(ref, **{Q_NAME: plane_rotation(Uq, 1, 6, 0.2) @ ref[Q_NAME]})
    a, b = (
        Checkpoint(write_ckpt(tmp_path / "a", {k: v.float() for k, v in ref.items()})),
        Checkpoint(write_ckpt(tmp_path / "b", {k: v.float() for k, v in tgt.items()})),
    )
    loads = []
    original = Checkpoint.load

    def counting(self, name, device="cpu", dtype=torch.float64):
        loads.append((self.path.name, dtype))
        return original(self, name, device, dtype)

    monkeypatch.setattr(Checkpoint, "load", counting)
    opts = Options(k=K, metrics=("angles",))
    cache = SVDCache(opts)
    names = sorted(ref)
    rows = compare(a, b, names, cache, opts, keep_target=False)
    rows_again = compare(a, b, names, cache, opts, keep_target=False)
    assert loads == [("a", None), ("b", None), ("a", None), ("b", None), ("b", None), ("b", None)]
    assert list(cache.mem) == [str(a.path.resolve())] and cache.computed == 6
    full = {r["name"]: r for r in compare(a, b, names, SVDCache(Options(k=K)), Options(k=K))}
    for r, r2 in zip(rows, rows_again):
        assert r == r2
        assert r["u_angle_max"] == pytest.approx(full[r["name"]]["u_angle_max"], abs=1e-12)
    assert {r["name"]: r["u_angle_max"] for r in rows}[Q_NAME] == pytest.approx(0.2, abs=1e-6)  # float32 storage
