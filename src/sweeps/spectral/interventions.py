"""SVD component-swap interventions, the corrected form of PAPER.md section 6 (a)/(b).

The original restore built W' = [U_B,top | U_T,mid | U_B,tail] diag(σ) [V ...]ᵀ,
which silently returned W_B at k_top + k_tail = rank (even for "direction-only")
and relied on orthonormality of blocks taken from two different SVDs. Here every
edit is a *component swap* over an index set S:

    W' = W_T − Σ_{i∈S} σ_i^T u_i^T v_i^Tᵀ + Σ_{i∈S} σ_i^* u_i^* v_i^*ᵀ

which equals the mixed-basis product exactly in exact arithmetic, never needs
the mixed blocks to be orthonormal, and leaves every component outside S (and
anything a truncated SVD missed) untouched. All arithmetic is float64; the
result is returned once in W_tgt's dtype. SVD tuples are (U [m, r], S [r],
V [n, r]) with V holding right singular vectors as columns.
"""

from __future__ import annotations

import numpy as np
import torch

from .decompositions import top_k_svd
from .metrics import _f64, principal_angles

MODES = ("full", "direction", "sigma")


def index_set(rank: int, top: int = 0, tail: int = 0) -> torch.Tensor:
    """Sorted int64 indices of the first `top` and last `tail` of `rank` triplets.

    This is the paper's index set: top = the k_top largest singular values,
    tail = the k_tail smallest, mid = everything else (not included).
    top + tail = rank gives all indices; overlap is rejected.
    """
    if min(rank, top, tail) < 0 or top + tail > rank:
        raise ValueError(f"need 0 <= top, tail and top + tail <= rank, got top={top}, tail={tail}, rank={rank}")
    head = torch.arange(top, dtype=torch.long)  # [top]
    end = torch.arange(rank - tail, rank, dtype=torch.long)  # [tail]
    return torch.cat([head, end])  # [top + tail]


def _svd64(W, svd) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return a float64 (U, S, V) for W: the given tuple upcast, or a fresh thin SVD."""
    if svd is not None:
        U, S, V = svd
        return _f64(U), _f64(S), _f64(V)  # [m, r], [r], [n, r]
    W = _f64(W)  # [m, n]
    return top_k_svd(W, min(W.shape), "full")  # [m, r], [r], [n, r]


def _indices(idx, available: int) -> torch.Tensor:
    """Validate an index set (1-D, unique, within the available rank) and return it as int64."""
    idx = idx if torch.is_tensor(idx) else torch.as_tensor(np.asarray(idx))
    idx = idx.to(torch.long).reshape(-1)  # [s]
    if idx.numel() and (idx.min() < 0 or idx.max() >= available):
        raise ValueError(f"indices must lie in [0, {available}), got min={idx.min()}, max={idx.max()}")
    if idx.unique().numel() != idx.numel():
        raise ValueError("index set contains duplicates")
    return idx


def _like(out: torch.Tensor, ref):
    """Cast a float64 result back to the dtype (and array type) of `ref`."""
    if isinstance(ref, np.ndarray):
        return out.numpy().astype(ref.dtype)
    return out.to(dtype=ref.dtype, device=ref.device) if torch.is_tensor(ref) else out


def _components(U, S, V, idx) -> torch.Tensor:
    """Σ_{i∈idx} σ_i u_i v_iᵀ as a dense [m, n] matrix."""
    return (U[:, idx] * S[idx]) @ V[:, idx].T  # [m, n]


def swap_components(W_ref, W_tgt, index_set, mode: str = "full", svd_ref=None, svd_tgt=None):
    """Swap the triplets in `index_set` of W_tgt (T) for those of W_ref (B).

    mode="full"      : add σ_i^B u_i^B v_i^Bᵀ   (full-triplet restore; S = all → W_B)
    mode="direction" : add σ_i^T u_i^B v_i^Bᵀ   (direction-only; S = all → U_B Σ_T V_Bᵀ, not W_B)
    mode="sigma"     : add σ_i^B u_i^T v_i^Tᵀ   (σ-only control; S = all → U_T Σ_B V_Tᵀ)
    In every mode σ_i^T u_i^T v_i^Tᵀ is subtracted first, so S = ∅ returns W_T.
    Precomputed SVDs may be passed (possibly truncated, then S must index within
    them). Computed in float64, returned in W_tgt's dtype. The result is a plain
    matrix, not an SVD: its singular values are in general not the mixed σ's.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if tuple(W_ref.shape) != tuple(W_tgt.shape):
        raise ValueError(f"shape mismatch: {tuple(W_ref.shape)} vs {tuple(W_tgt.shape)}")
    Ub, Sb, Vb = _svd64(W_ref, svd_ref)  # [m, r], [r], [n, r]
    Ut, St, Vt = _svd64(W_tgt, svd_tgt)  # [m, r], [r], [n, r]
    idx = _indices(index_set, min(Sb.numel(), St.numel()))  # [s]
    new = {"full": (Ub, Sb, Vb), "direction": (Ub, St, Vb), "sigma": (Ut, Sb, Vt)}[mode]
    out = _f64(W_tgt) - _components(Ut, St, Vt, idx) + _components(*new, idx)  # [m, n]
    return _like(out, W_tgt)


def _rotate_columns(Q_S: torch.Tensor, theta: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotate column j of the orthonormal Q_S [m, s] by angle θ_j towards a random unit vector.

    q'_j = cos θ_j q_j + sin θ_j r_j, with r_j orthonormal Haar-random directions in
    the orthogonal complement of span(Q_S). Then Q_Sᵀ Q' = diag(cos θ) and Q' is
    orthonormal, so the principal angles between span(Q_S) and span(Q') are
    exactly θ. Needs (#nonzero θ) <= m − s.
    """
    m, s = Q_S.shape
    moved = theta > 0  # [s]
    p = int(moved.sum())
    if p > m - s:
        raise ValueError(f"{p} nonzero angles need a complement of that size; only m-s={m - s} dims available")
    out = Q_S.clone()  # [m, s]
    if p == 0:
        return out
    G = torch.randn(m, p, generator=gen, dtype=torch.float64)  # [m, p]
    for _ in range(2):  # project twice for numerical orthogonality to span(Q_S)
        G = G - Q_S @ (Q_S.T @ G)
    R = torch.linalg.qr(G).Q  # [m, p]
    out[:, moved] = Q_S[:, moved] * torch.cos(theta[moved]) + R * torch.sin(theta[moved])
    return out


def _angle_pair(angle_like, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse angle_like into per-index (θ_U [s], θ_V [s]) float64 tensors in [0, π/2]."""
    pair = angle_like if isinstance(angle_like, tuple) else (angle_like, angle_like)
    out = []
    for a in pair:
        t = _f64(a).reshape(-1)  # [1] or [s]
        t = t.expand(s).clone() if t.numel() == 1 else t
        if t.numel() != s or t.min() < 0 or t.max() > torch.pi / 2:
            raise ValueError(f"angles must be a scalar or {s} values in [0, pi/2]")
        out.append(t)
    return out[0], out[1]


def matched_rotation_angles(W_ref, W_tgt, index_set, svd_ref=None, svd_tgt=None):
    """(θ_U, θ_V): principal angles between B's and T's singular subspaces on `index_set`.

    θ_U = principal_angles(U_B[:, S], U_T[:, S]) (ascending), likewise θ_V. Pass the
    pair as `angle_like` to random_rotation_control to get a control of matched size.
    Requires |S| < m and |S| < n.
    """
    Ub, _, Vb = _svd64(W_ref, svd_ref)  # [m, r], [r], [n, r]
    Ut, _, Vt = _svd64(W_tgt, svd_tgt)  # [m, r], [r], [n, r]
    idx = _indices(index_set, min(Ub.shape[1], Ut.shape[1]))  # [s]
    return principal_angles(Ub[:, idx], Ut[:, idx]), principal_angles(Vb[:, idx], Vt[:, idx])


def random_rotation_control(W_tgt, index_set, angle_like, seed: int = 0, svd_tgt=None):
    """Control for the swap: rotate T's chosen singular directions by a random rotation of matched size.

    For each i in S (in the order given), u_i^T is replaced by cos θ_j u_i + sin θ_j r_j
    and v_i^T by cos φ_j v_i + sin φ_j r'_j, where r, r' are Haar-random orthonormal
    directions orthogonal to span(U_T,S) resp. span(V_T,S); σ_i^T is kept, so this is
    the control for mode="direction". "Matched size" means: the principal angles
    between span(U_T,S) and the rotated span are *exactly* θ (and φ for V), so the
    mean angle, geodesic and chordal distances equal those of the B→T rotation when
    angle_like = matched_rotation_angles(W_ref, W_tgt, S) — the j-th angle goes to the
    j-th index of S (principal angles carry no index pairing, so this is a choice).
    angle_like: scalar (all angles equal, e.g. the mean angle), [s] tensor (same for
    U and V), or a (θ_U, θ_V) tuple. Computed in float64, returned in W_tgt's dtype.
    """
    Ut, St, Vt = _svd64(W_tgt, svd_tgt)  # [m, r], [r], [n, r]
    idx = _indices(index_set, St.numel())  # [s]
    theta_u, theta_v = _angle_pair(angle_like, idx.numel())  # [s], [s]
    gen = torch.Generator().manual_seed(seed)
    U_new = _rotate_columns(Ut[:, idx], theta_u, gen)  # [m, s]
    V_new = _rotate_columns(Vt[:, idx], theta_v, gen)  # [n, s]
    removed = _components(Ut, St, Vt, idx)  # [m, n]
    added = (U_new * St[idx]) @ V_new.T  # [m, n]
    return _like(_f64(W_tgt) - removed + added, W_tgt)
