"""Metric adapters: the spectral metrics of one matrix in a reference and a target checkpoint.

Each adapter takes a ``Pair`` and returns ``{column: float}``, the columns it adds to the rows of
``stream.compare``. An adapter is selected by ``spectral.metrics`` through its config file,
``conf/spectral_metric/<name>.yaml`` (``_target_: sweeps.spectral.adapters.<function>``,
``_partial_: true``, ``reads``: the matrices it needs besides the decompositions). Adding a
metric is one function here plus that one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from . import metrics as M
from .decompositions import Decomp, decompose
from .options import Options


@dataclass
class Pair:
    """One matrix in a reference and a target checkpoint, with their top-k decompositions.

    W_ref / W_tgt (float64) are loaded only when a configured metric reads them (``reads``).
    """

    W_ref: torch.Tensor | None  # [m, n]
    W_tgt: torch.Tensor | None  # [m, n]
    ref: Decomp
    tgt: Decomp
    opts: Options

    @property
    def k(self) -> int:
        return self.ref[1].numel()

    @cached_property
    def dW(self) -> torch.Tensor:
        return self.W_tgt - self.W_ref  # [m, n]


def sv_drift(p: Pair) -> dict[str, float]:
    """Mean |Δσ|/σ and mean |Δσ| of the top-k singular values, paired by rank."""
    d = M.sv_drift(p.ref[1], p.tgt[1])
    return {"sv_drift": d["mean_abs_rel"], "sv_delta_mean": d["mean_abs_delta"]}


def angles(p: Pair) -> dict[str, float]:
    """Principal angles of the top-k U and V subspaces, their distances and the random baseline."""
    out: dict[str, float] = {}
    for side, A, B in (("u", p.ref[0], p.tgt[0]), ("v", p.ref[2], p.tgt[2])):
        theta = M.principal_angles(A, B)  # [k] ascending
        d = M.subspace_distances(theta, p.k, A.shape[0])
        out.update(
            {
                f"{side}_angle_mean": d["mean_angle"],
                f"{side}_angle_max": theta[-1].item(),
                f"{side}_geodesic": d["geodesic"],
                f"{side}_chordal_normalised": d["chordal_normalised"],
                f"{side}_projection_frobenius": d["projection_frobenius"],
                f"{side}_chordal_random": d["chordal_normalised_random"],
            }
        )
    out["angle_mean"] = 0.5 * (out["u_angle_mean"] + out["v_angle_mean"])
    return out


def best_match(p: Pair) -> dict[str, float]:
    """Each reference singular vector's best |cosine| match among the target's, averaged."""
    return {
        "u_best_match": M.best_match_alignment(p.ref[0], p.tgt[0]),
        "v_best_match": M.best_match_alignment(p.ref[2], p.tgt[2]),
    }


def update_spectrum(p: Pair) -> dict[str, float]:
    """Top singular values of ΔW (same method as the weights), its norm and relative size."""
    top = min(p.opts.update_top, *p.dW.shape)
    norm = p.dW.norm().item()
    sv = decompose(p.dW, top, p.opts)[1] if norm > 0 else torch.zeros(top, dtype=torch.float64)  # [top]
    out = {f"update_sv{i + 1}": s for i, s in enumerate(sv.tolist())}
    return {**out, "update_norm": norm, "update_rel": norm / max(p.W_ref.norm().item(), 1e-300)}


def update_energy(p: Pair) -> dict[str, float]:
    """ΔW's energy on the reference top-k block's diagonal, off it (rotation) and outside it."""
    e = M.update_energy(p.W_ref, p.W_tgt, p.ref[0], p.ref[2])
    return {"E_diag": e["E_diag"], "E_rot": e["E_rot"], "E_outside": e["E_outside"]}


def residual_outside(p: Pair) -> dict[str, float]:
    """The target's energy outside the reference top-k block, relative to the reference's."""
    return {"residual_outside": M.residual_outside(p.W_tgt, p.ref[0], p.ref[2], p.ref[1])["residual"]}
