"""Pure numeric metrics for weight-space (spectral) analysis (PAPER.md section 6).

Every function takes torch tensors (numpy arrays are converted), computes in
float64 and returns float64 tensors or plain Python floats. Nothing here logs,
loads checkpoints or knows about models; callers pass matrices and bases.

Conventions used throughout:
- A weight is W [m, n]; its thin SVD is W = U diag(S) Vᵀ with U [m, r],
  S [r] (descending), V [n, r] (columns, *not* Vᵀ), r = min(m, n).
- A "basis" is a matrix with orthonormal columns, shape [n, k].
- Angles are in radians, sorted ascending.
"""

from __future__ import annotations

import math

import numpy as np
import torch

CONVENTION = (
    "angles=Knyazev-Argentati fp64 (rad, ascending); geodesic=||theta||_2; "
    "projection_2norm=sin(theta_max); chordal=sqrt(sum sin^2); "
    "chordal_normalised=sqrt(sum sin^2 / k) in [0,1]; "
    "projection_frobenius=sqrt2*sqrt(sum sin^2)=||P_A-P_B||_F; "
    "random baseline E[mean sin^2]=1-k/n"
)


def _f64(x) -> torch.Tensor:
    """Return `x` (tensor, numpy array or number) as a float64 torch tensor (CPU copy-free when possible)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return torch.as_tensor(x).to(torch.float64)


def _k_message(k: int, n: int, bound: str) -> str:
    """One-line error text shared by every k-vs-n guard."""
    return f"k={k} must be {bound} n={n} (two k-subspaces of R^n share 2k-n dims); use k <= n/2"


def check_k(k: int, n: int, max_fraction: float = 0.5, allow: bool = False) -> None:
    """Raise ValueError when k > max_fraction * n, unless `allow` is set.

    Two k-dimensional subspaces of R^n share at least max(0, 2k - n) dimensions,
    so that many principal angles are forced to zero and every distance is
    biased towards 0; at k >= n all angles are 0. The default guard is k <= n/2.
    k >= n is always rejected (the subspaces are both the whole space).
    """
    if k >= n:
        raise ValueError(_k_message(k, n, "below"))
    if not allow and k > max_fraction * n:
        raise ValueError(_k_message(k, n, f"at most {max_fraction:g}*n for"))


def principal_angles(A, B) -> torch.Tensor:
    """Principal angles between span(A) and span(B), radians, ascending, float64.

    A, B are [n, k] with orthonormal columns (not checked). Uses the mixed
    sine/cosine method of Knyazev & Argentati (2002): cosines are the singular
    values of AᵀB, sines the singular values of B − A(AᵀB). arccos of a cosine
    cannot resolve small angles (cos θ ≈ 1 − θ²/2 saturates: ≈8.5e-4 rad in fp32,
    ≈1e-8 in fp64), arcsin of a sine loses accuracy near π/2; each angle is taken
    from the sine when sin²θ <= 1/2 and from the cosine otherwise. Inputs are
    upcast to float64 first, so float32 bases are fine.
    Raises ValueError if k >= n (every angle would be trivially 0).
    """
    A, B = _f64(A), _f64(B)  # [n, k], [n, k]
    if A.ndim != 2 or A.shape != B.shape:
        raise ValueError(f"A and B must be 2-D with equal shapes, got {tuple(A.shape)} and {tuple(B.shape)}")
    n, k = A.shape
    if k >= n:
        raise ValueError(_k_message(k, n, "below"))
    M = A.T @ B  # [k, k]
    cos = torch.linalg.svdvals(M).clamp(0.0, 1.0).flip(0)  # [k] ascending -> angles descending
    theta_cos = torch.arccos(cos).flip(0)  # [k] ascending
    sin = torch.linalg.svdvals(B - A @ M).clamp(0.0, 1.0)  # [k] descending
    theta_sin = torch.arcsin(sin).flip(0)  # [k] ascending
    use_sin = sin.flip(0) ** 2 <= 0.5  # [k]
    return torch.where(use_sin, theta_sin, theta_cos)  # [k]


def sv_drift(S_ref, S_tgt, eps: float = 0.0) -> dict:
    """Singular-value drift between reference and target spectra (same length k).

    Returns delta [k] = σ^T − σ^B, rel [k] = delta / σ^B (NaN where σ^B <= eps,
    the σ=0 guard), mean_abs_rel = mean |Δσ|/σ over the valid indices (the paper's
    summary, 0.003–0.007 reported), mean_abs_delta, and n_excluded (indices
    skipped by the guard). Simplification: indices are paired by rank order, no
    matching of singular vectors is attempted.
    """
    S_ref, S_tgt = _f64(S_ref), _f64(S_tgt)  # [k], [k]
    if S_ref.shape != S_tgt.shape:
        raise ValueError(f"spectra differ in shape: {tuple(S_ref.shape)} vs {tuple(S_tgt.shape)}")
    delta = S_tgt - S_ref  # [k]
    valid = S_ref > eps  # [k]
    rel = torch.full_like(delta, float("nan"))  # [k]
    rel[valid] = delta[valid] / S_ref[valid]
    mean_rel = rel[valid].abs().mean().item() if valid.any() else float("nan")
    return {
        "delta": delta,
        "rel": rel,
        "mean_abs_rel": mean_rel,
        "mean_abs_delta": delta.abs().mean().item(),
        "n_excluded": int((~valid).sum()),
    }


def subspace_distances(angles, k: int, n: int) -> dict:
    """Distances between two k-subspaces of R^n from their principal angles.

    Convention (see CONVENTION, log it with every result):
      geodesic            = ‖θ‖₂
      projection_2norm    = sin θ_max
      chordal             = sqrt(Σ sin²θ_i)
      chordal_normalised  = sqrt(Σ sin²θ_i / k) ∈ [0, 1]   (the paper's plot)
      projection_frobenius= √2·sqrt(Σ sin²θ_i) = ‖P_A − P_B‖_F (the original code)
      mean_angle          = mean θ_i
    Also returned: mean_sin2, the random baseline chordal_normalised_random =
    sqrt(1 − k/n), and forced_zero_angles = max(0, 2k − n).
    """
    theta = _f64(angles).reshape(-1)  # [k]
    if theta.numel() != k:
        raise ValueError(f"got {theta.numel()} angles for k={k}")
    sin2 = torch.sin(theta) ** 2  # [k]
    total = sin2.sum().item()
    return {
        "geodesic": theta.norm().item(),
        "projection_2norm": math.sin(theta.max().item()),
        "chordal": math.sqrt(total),
        "chordal_normalised": math.sqrt(total / k),
        "projection_frobenius": math.sqrt(2.0 * total),
        "mean_angle": theta.mean().item(),
        "mean_sin2": total / k,
        "chordal_normalised_random": random_subspace_baseline(k, n)["chordal_normalised"],
        "forced_zero_angles": max(0, 2 * k - n),
    }


def random_subspace_baseline(k: int, n: int) -> dict:
    """Expected distances between two independent uniformly random k-subspaces of R^n.

    E‖AᵀB‖_F² = k²/n exactly, so E[mean sin²θ] = 1 − k/n (exact) and the
    normalised chordal distance concentrates at ≈ sqrt(1 − k/n) (Jensen: the
    expectation of the square root is slightly below it). forced_zero_angles =
    max(0, 2k − n) angles are zero for *any* pair of subspaces.
    """
    if not 0 < k <= n:
        raise ValueError(f"need 0 < k <= n, got k={k}, n={n}")
    mean_sin2 = 1.0 - k / n
    return {"mean_sin2": mean_sin2, "chordal_normalised": math.sqrt(mean_sin2), "forced_zero_angles": max(0, 2 * k - n)}


def random_orthonormal(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-distributed n×k orthonormal basis, float64: QR of a Gaussian with the R-diagonal sign fixed."""
    G = torch.randn(n, k, generator=generator, dtype=torch.float64)  # [n, k]
    Q, R = torch.linalg.qr(G)  # [n, k], [k, k]
    d = torch.sign(torch.diagonal(R))  # [k]
    d[d == 0] = 1.0
    return Q * d  # [n, k]


def sample_random_subspace_angles(k: int, n: int, trials: int, seed: int = 0) -> torch.Tensor:
    """Principal angles [trials, k] between pairs of independent Haar-random k-subspaces of R^n.

    Empirical check of random_subspace_baseline: angles.sin().pow(2).mean() ≈ 1 − k/n.
    """
    gen = torch.Generator().manual_seed(seed)
    out = [
        principal_angles(random_orthonormal(n, k, gen), random_orthonormal(n, k, gen)) for _ in range(trials)
    ]  # trials x [k]
    return torch.stack(out)  # [trials, k]


def best_match_alignment(U_ref, U_tgt) -> float:
    """(1/k) Σ_i max_j |(U_refᵀ U_tgt)_ij|: each reference vector's best |cosine| match.

    Pairs individual vectors, so it is sign-invariant but breaks when singular
    values are nearly equal (vectors then rotate freely within the cluster);
    principal angles do not have that problem. 1 for identical bases.
    """
    M = (_f64(U_ref).T @ _f64(U_tgt)).abs()  # [k, k']
    return M.max(dim=1).values.mean().item()


def update_spectrum(W_ref, W_tgt, k: int) -> torch.Tensor:
    """Top-k singular values [k] (descending, float64) of the update ΔW = W_tgt − W_ref."""
    dW = _f64(W_tgt) - _f64(W_ref)  # [m, n]
    if not 1 <= k <= min(dW.shape):
        raise ValueError(f"k={k} must be in [1, min(m, n)={min(dW.shape)}]")
    return torch.linalg.svdvals(dW)[:k]  # [k]


def update_energy(W_ref, W_tgt, U_ref_k, V_ref_k) -> dict:
    """Split the update energy ‖ΔW‖_F² using the reference top-k bases.

    C = U_refᵀ ΔW V_ref [k, k]. E_diag = ‖diag C‖² / ‖ΔW‖_F² (re-weighting of
    existing directions), E_rot = (‖C‖_F² − ‖diag C‖²) / ‖ΔW‖_F² (mixing between
    directions), E_outside = 1 − E_diag − E_rot (energy outside the top-k block).
    Guard: if ΔW = 0 all three are 0.0 (and total_sq = 0.0).
    """
    dW = _f64(W_tgt) - _f64(W_ref)  # [m, n]
    C = _f64(U_ref_k).T @ dW @ _f64(V_ref_k)  # [k, k]
    total = dW.pow(2).sum().item()
    if total == 0.0:
        return {"E_diag": 0.0, "E_rot": 0.0, "E_outside": 0.0, "total_sq": 0.0}
    diag = torch.diagonal(C).pow(2).sum().item()
    block = C.pow(2).sum().item()
    e_diag, e_rot = diag / total, (block - diag) / total
    return {"E_diag": e_diag, "E_rot": e_rot, "E_outside": 1.0 - e_diag - e_rot, "total_sq": total}


def residual_outside(W_tgt, U_ref_k, V_ref_k, S_ref_k) -> dict:
    """Per-matrix residual outside the reference top-k block: 1 − ‖U_refᵀ W_T V_ref‖_F² / Σ σ_ref².

    Returns residual, numerator = ‖U_refᵀ W_T V_ref‖_F² and denominator = Σ_{i≤k}
    (σ_i^ref)². Unlike the original code, small values are *not* zeroed. The
    residual can be negative when the target has grown inside the block. For the
    global (energy-weighted) version use projection_residual and sum the pieces.
    """
    C = _f64(U_ref_k).T @ _f64(W_tgt) @ _f64(V_ref_k)  # [k, k]
    num = C.pow(2).sum().item()
    den = _f64(S_ref_k).pow(2).sum().item()
    if den == 0.0:
        raise ValueError("reference singular values are all zero; residual undefined")
    return {"residual": 1.0 - num / den, "numerator": num, "denominator": den}


def projection_residual(W_tgt, U_k, V_k) -> tuple[float, float]:
    """(‖W_T − P_U W_T P_V‖_F², ‖W_T‖_F²) with P_U = U_k U_kᵀ, P_V = V_k V_kᵀ.

    The global residual is Σ_matrices residual_sq / Σ_matrices total_sq. The
    residual is formed explicitly (not as total − ‖UᵀWV‖²) to avoid cancellation
    when it is tiny.
    """
    W, U, V = _f64(W_tgt), _f64(U_k), _f64(V_k)  # [m, n], [m, k], [n, k]
    R = W - U @ (U.T @ W @ V) @ V.T  # [m, n]
    return R.pow(2).sum().item(), W.pow(2).sum().item()
