"""Top-k decompositions: the project's only (truncated) SVD code (PAPER.md section 6).

Every method returns U [m, k], S [k] (descending), V [n, k] (columns, not Vᵀ) in float64, for a
W [m, n] of any float dtype, on the GPU when W is there. The methods the spectral stage can use
are built from config, ``conf/spectral_method/<name>.yaml`` (``_target_`` one of the functions
below with the signature ``(W, k, opts)``, ``_partial_: true``), chosen by ``spectral.method``:

- ``full``: LAPACK thin SVD, truncated to k (exact; cost O(m n min(m, n))).
- ``eigh``: top-k eigenpairs of the smaller Gram matrix (W Wᵀ or WᵀW), with the other side as
  W V / σ. Exact up to rounding (the Gram squares the condition number, which in float64 costs
  nothing measurable for σ_k ≫ 1e-8 σ_1; a numerically rank-deficient top-k falls back to
  ``full``) and several times cheaper than the SVD, since only k eigenvectors are formed. On CPU
  the BLAS/LAPACK kernels of ``sweeps.spectral.lapack`` do the work.
- ``randomized``: Halko–Martinsson–Tropp subspace iteration (Gaussian start, ``oversample``
  extra columns, ``n_iter`` QR-stabilised power steps). Its accuracy depends on the spectral gap
  at k, which is small in trained weights; ``svd_error_report`` measures it against ``full``.

``top_k_svd`` (plain arguments, torch's SVD for ``full``) serves the training-time monitors and
the pure-metric API; ``subspace_iteration`` is also their warm-started tracker.
"""

from __future__ import annotations

import torch

from . import components
from .lapack import _gram, _top_eigh, other_side
from .metrics import _f64, principal_angles
from .options import Options

Decomp = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # U [m, k], S [k], V [n, k]
METHODS: tuple[str, ...] = tuple(components.available("spectral_method"))  # the names conf/ offers


def subspace_iteration(W: torch.Tensor, start: torch.Tensor, n_iter: int, k: int) -> tuple[Decomp, torch.Tensor]:
    """Top-k triplets of W from the block power method started at ``start`` [n, l], l >= k.

    Q spans W·start; each step alternates QR-orthonormalised products with Wᵀ and W, which
    amplifies the top singular directions by (σ_i / σ_l+1)² per step; a Rayleigh–Ritz step (SVD
    of the small Qᵀ W) gives the triplets. Returns ((U_k, S_k, V_k), V_l) where V_l [n, l] can
    warm-start the next call on a nearby matrix.
    """
    Q = torch.linalg.qr(W @ start).Q  # [m, l]
    for _ in range(n_iter):
        Z = torch.linalg.qr(W.T @ Q).Q  # [n, l]
        Q = torch.linalg.qr(W @ Z).Q  # [m, l]
    Ub, S, Vh = torch.linalg.svd(Q.T @ W, full_matrices=False)  # [l, l], [l], [l, n]
    return ((Q @ Ub)[:, :k], S[:k], Vh[:k].T), Vh.T


def _torch_svd(W: torch.Tensor, k: int) -> Decomp:
    """torch's thin SVD of the float64 W, truncated to k."""
    U, S, Vh = torch.linalg.svd(W.to(torch.float64), full_matrices=False)  # [m, r], [r], [r, n]
    return U[:, :k], S[:k], Vh[:k].T


def _randomized(W: torch.Tensor, k: int, oversample: int, n_iter: int, seed: int) -> Decomp:
    """HMT range finder: a seeded Gaussian start of k + oversample columns, n_iter power steps."""
    W = W.to(torch.float64)  # [m, n]
    m, n = W.shape
    gen = torch.Generator().manual_seed(seed)
    width = min(k + oversample, m, n)
    omega = torch.randn(n, width, generator=gen, dtype=W.dtype).to(W.device)  # [n, l]
    return subspace_iteration(W, omega, n_iter, k)[0]


def full(W: torch.Tensor, k: int, opts: Options) -> Decomp:
    """Thin SVD truncated to k. On CPU scipy's LAPACK gesdd of the tall orientation (a wide W is
    passed as the Fortran view of Wᵀ, no copy): torch's SVD of a wide 896x4864 float64 matrix
    measured 2.6x slower on this project's CPUs (1.85 s vs 0.70 s, one thread)."""
    if W.device.type != "cpu":
        return _torch_svd(W, k)
    import scipy.linalg

    Wn = W.detach().to(torch.float64).contiguous().numpy()  # [m, n]
    wide = Wn.shape[0] < Wn.shape[1]
    U, S, Vh = scipy.linalg.svd(
        Wn.T if wide else Wn, full_matrices=False, check_finite=False
    )  # tall: [M, r], [r], [r, r]
    if wide:  # W = (U S Vh)ᵀ = Vhᵀ S Uᵀ
        U, Vh = Vh.T, U.T
    return (torch.from_numpy(U[:, :k].copy()), torch.from_numpy(S[:k].copy()), torch.from_numpy(Vh[:k].T.copy()))


def eigh(W: torch.Tensor, k: int, opts: Options) -> Decomp:
    """Top-k triplets from the top-k eigenpairs of the Gram matrix of W's short side; the other
    side is W Q / σ (computed per slab on CPU, like the Gram matrix)."""
    tall = W.shape[0] > W.shape[1]
    if W.device.type != "cpu":
        W = W.to(torch.float64)
    top = _top_eigh(_gram(W), k, overwrite=True)  # ([k], [r, k]) or None (LAPACK failed)
    if top is None:
        return full(W, k, opts)
    lam, Q = top
    S = lam.clamp_min(0.0).sqrt()  # [k]
    if S[-1] <= 1e-7 * S[0]:  # numerically rank-deficient top-k: W V / σ would be unstable
        return full(W, k, opts)
    other = other_side(W, Q)  # [m, k] (tall) or [n, k] (wide)
    other /= S
    return (other, S, Q) if tall else (Q, S, other)


def randomized(W: torch.Tensor, k: int, opts: Options) -> Decomp:
    """HMT subspace iteration with opts.oversample, opts.n_iter and opts.seed."""
    return _randomized(W, k, opts.oversample, opts.n_iter, opts.seed)


def decompose(W: torch.Tensor, k: int, opts: Options, method: str | None = None) -> Decomp:
    """Top-k (U [m, k], S [k], V [n, k], float64) of W [m, n] (any float dtype) by ``method``
    (default: opts.method), the function conf/spectral_method/<method>.yaml names."""
    return components.method(method or opts.method)(W, k, opts)


def top_k_svd(W, k: int, method: str = "full", oversample: int = 10, n_iter: int = 4, seed: int = 0) -> Decomp:
    """Top-k singular triplets (U_k [m, k], S_k [k] descending, V_k [n, k]) in float64.

    method="full" truncates torch's thin SVD (exact, on W's device). method="randomized" is the
    Halko–Martinsson–Tropp range finder with `oversample` extra columns, `n_iter` QR-stabilised
    power iterations and a seeded private generator (deterministic for a given seed). Signs of
    the singular vectors are arbitrary; use subspace metrics, never raw U differences.
    """
    W = _f64(W)  # [m, n]
    m, n = W.shape
    if not 1 <= k <= min(m, n):
        raise ValueError(f"k={k} must be in [1, min(m, n)={min(m, n)}]")
    if method == "full":
        return _torch_svd(W, k)
    if method != "randomized":
        raise ValueError(f"method must be 'full' or 'randomized', got {method!r}")
    return _randomized(W, k, oversample, n_iter, seed)


def _error(shape: tuple[int, ...], exact: Decomp, approx: Decomp) -> dict[str, float]:
    """sv_max_rel = max_i |s_i' − s_i| / s_i (s_i = 0 skipped), sv_rel_l2 = ‖s' − s‖₂ / ‖s‖₂,
    u_sin_max / v_sin_max = sin of the largest principal angle between the top-k bases (0.0 when
    k spans the whole side, where the angle is trivial)."""
    (Uf, Sf, Vf), (Um, Sm, Vm) = exact, approx  # [m, k], [k], [n, k] each
    k = Sf.numel()
    nz = Sf > 0  # [k]
    rel = ((Sm[nz] - Sf[nz]).abs() / Sf[nz]).max().item() if nz.any() else 0.0
    l2 = ((Sm - Sf).norm() / Sf.norm()).item() if Sf.norm() > 0 else 0.0
    return {
        "sv_max_rel": rel,
        "sv_rel_l2": l2,
        "u_sin_max": principal_angles(Uf, Um)[-1].sin().item() if k < shape[0] else 0.0,
        "v_sin_max": principal_angles(Vf, Vm)[-1].sin().item() if k < shape[1] else 0.0,
    }


def svd_error(W, k: int, oversample: int = 10, n_iter: int = 4, seed: int = 0) -> dict[str, float]:
    """Accuracy of the randomized top-k SVD against the full one (keys as ``_error``)."""
    W = _f64(W)  # [m, n]
    exact = top_k_svd(W, k, "full")
    return _error(tuple(W.shape), exact, top_k_svd(W, k, "randomized", oversample, n_iter, seed))


def svd_error_report(W: torch.Tensor, k: int, opts: Options) -> dict[str, float]:
    """Error of opts.method against the full SVD on one matrix (keys as ``svd_error``)."""
    return _error(tuple(W.shape), decompose(W, k, opts, "full"), decompose(W, k, opts))
