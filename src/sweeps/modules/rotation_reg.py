"""Rotation-preserving SFT: a penalty on how far chosen weights move their top singular structure.

The paper ends with "controlling singular-vector rotation may improve OOD robustness". This
module makes that an SFT option (``algo.rotation_reg``, off by default) with two penalties, each
a sum over the target matrices (``model.spectral_targets``: q/k/v/down of every layer), added to
the SFT loss with weight λ (``algo.rotation_reg.lam``):

- ``variant=block``: R = Σ ‖U₀ᵀ W V₀ − U₀ᵀ W₀ V₀‖²_F, where U₀ [m, k], V₀ [n, k] are the top-k
  singular vectors of the base weight W₀, computed once when the job starts (from the weights as
  built, before any resume state is loaded, so a resumed job uses the same references). R is 0
  at W = W₀ and quadratic in W; its gradient is 2 U₀ (U₀ᵀ (W − W₀) V₀) V₀ᵀ. What it pins, and
  what it does not: the k×k block of W inside the base's top-k subspaces (the top singular
  values and any mixing among the top directions). To first order, the subspaces themselves
  rotate through the *off-block* parts (I − U₀U₀ᵀ) ΔW V₀ and U₀ᵀ ΔW (I − V₀V₀ᵀ), which this
  penalty leaves free; a large λ still keeps the top directions dominant, which slows rotation,
  but it is not a penalty on the angles.
- ``variant=angle``: the principal angles themselves. Every ``refresh`` steps the current top-k
  triplets (U_t, S_t, V_t) of W are re-estimated (no gradient: a few steps of subspace iteration
  warm-started from the previous estimate, as the online rotation monitor does); between
  refreshes the penalty is
      P = ‖(I − U₀U₀ᵀ) Û‖²_F + ‖(I − V₀V₀ᵀ) V̂‖²_F,   Û = W V_t S_t⁻¹ [m, k],  V̂ = Wᵀ U_t S_t⁻¹ [n, k]
  Û and V̂ are differentiable in W and equal U_t and V_t at the refresh (W V_t = U_t S_t), so
  there P = Σ sin²θ_U + Σ sin²θ_V, the squared chordal distances between the current and the
  base top-k subspaces; its gradient pushes W's top directions back into the base's subspaces.
  With bases refreshed only periodically, Û drifts from the true top-k basis between refreshes
  (the price of not differentiating through an SVD).

Cost per step (``bench/rotation_reg.py``): two thin products per matrix and side, O(m n k), plus
for ``angle`` the subspace iteration every ``refresh`` steps, O(m n (k + p)) per matrix.

λ = 0 is plain SFT: nothing is computed, the run directory and signature are those of plain SFT
(``sweeps.runs.rotation_variant``). Several processes: every DDP rank computes the same penalty
on its full replica of the weights and DDP averages the gradients, which leaves λ∇R unchanged.
Sharded parameters (FSDP) and LoRA (the adapted weight is not a parameter) are refused by the
config checks (``sweeps.schema``).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from sweeps.spectral.decompositions import subspace_iteration, top_k_svd
from sweeps.spectral.metrics import check_k

VARIANTS = ("block", "angle")


def block_penalty(W: torch.Tensor, U0: torch.Tensor, V0: torch.Tensor, C0: torch.Tensor) -> torch.Tensor:
    """‖U0ᵀ W V0 − C0‖²_F for W [m, n], U0 [m, k], V0 [n, k], C0 = U0ᵀ W0 V0 [k, k]; a scalar []."""
    B = U0.T @ (W @ V0)  # [k, m] @ [m, k] -> [k, k]
    return (B - C0).pow(2).sum()


def angle_penalty(
    W: torch.Tensor, U0: torch.Tensor, V0: torch.Tensor, Ut: torch.Tensor, St: torch.Tensor, Vt: torch.Tensor
) -> torch.Tensor:
    """‖(I − U0U0ᵀ) W Vt/St‖²_F + ‖(I − V0V0ᵀ) Wᵀ Ut/St‖²_F for W [m, n], U0, Ut [m, k], V0, Vt [n, k],
    St [k] (the stop-gradient current triplets); equals Σ sin²θ_U + Σ sin²θ_V when (Ut, St, Vt)
    are W's exact top-k triplets. A scalar []."""
    Uh = (W @ Vt) / St  # [m, k]
    Vh = (W.T @ Ut) / St  # [n, k]
    ru = Uh - U0 @ (U0.T @ Uh)  # [m, k] part outside span(U0)
    rv = Vh - V0 @ (V0.T @ Vh)  # [n, k] part outside span(V0)
    return ru.pow(2).sum() + rv.pow(2).sum()


def targets_of(model: torch.nn.Module, patterns: list[str]) -> dict[str, torch.nn.Parameter]:
    """{name: 2-D trainable parameter} whose name matches any of the regexes."""
    return {
        n: p
        for n, p in model.named_parameters()
        if p.ndim == 2 and p.requires_grad and any(re.search(rx, n) for rx in patterns)
    }


class RotationRegulariser:
    """The penalty of one SFT job (see the module doc); ``penalty(model, step)`` is R(W) at ``step``.

    State: the base references (U₀, V₀, and C₀ for ``block``) per target, computed at
    construction from the model's current weights; for ``angle`` also the current triplets and
    the subspace-iteration warm start, saved with the trainer state (``state_dict``) so that a
    resumed job continues with the same bases.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        targets: list[str],
        k: int,
        variant: str = "block",
        refresh: int = 10,
        n_iter: int = 2,
        oversample: int = 8,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"algo.rotation_reg.variant={variant!r}: use one of {list(VARIANTS)}")
        params = targets_of(model, targets)
        if not params:
            raise ValueError(f"algo.rotation_reg: no trainable 2-D parameter matches model.spectral_targets={targets}")
        self.k, self.variant, self.refresh, self.n_iter, self.oversample = k, variant, refresh, n_iter, oversample
        self.names = sorted(params)
        self.ref: dict[str, dict[str, torch.Tensor]] = {}
        for name in self.names:
            W = params[name].detach()
            m, n = W.shape
            try:
                check_k(k, m)
                check_k(k, n)
            except ValueError as err:
                raise ValueError(f"algo.rotation_reg.k={k} for {name} [{m}, {n}]: {err}") from None
            U, S, V = top_k_svd(W.to(torch.float64), k, "full")  # [m, k], [k], [n, k] exact
            ref = {"U0": U.to(W.dtype), "V0": V.to(W.dtype)}
            ref["C0"] = ref["U0"].T @ W @ ref["V0"]  # [k, k] (≈ diag(S) in W's dtype)
            if variant == "angle":  # the current triplets start at the base's
                l = min(k + oversample, m, n)
                Ul, Sl, Vl = top_k_svd(W.to(torch.float64), l, "full")
                ref.update(Ut=ref["U0"].clone(), St=S.to(W.dtype), Vt=ref["V0"].clone(), warm=Vl)
            self.ref[name] = ref
        self._refreshed = 0 if variant == "angle" else None

    @torch.no_grad()
    def _refresh(self, params: dict[str, torch.Tensor]) -> None:
        for name in self.names:
            r = self.ref[name]
            W = params[name].detach().to(torch.float64)  # [m, n]
            (U, S, V), r["warm"] = subspace_iteration(W, r["warm"].to(W.device), self.n_iter, self.k)
            dtype = params[name].dtype
            r["Ut"], r["St"], r["Vt"] = U.to(dtype), S.to(dtype), V.to(dtype)  # [m, k], [k], [n, k]

    def penalty(self, model: torch.nn.Module, step: int) -> torch.Tensor:
        """R(W) of the model's current weights (differentiable); ``step`` = optimiser steps done."""
        params = dict(model.named_parameters())
        if self.variant == "angle" and step % self.refresh == 0 and step != self._refreshed:
            self._refresh(params)
            self._refreshed = step
        total = None
        device_type = next(iter(params.values())).device.type
        with torch.autocast(device_type, enabled=False):  # full precision under bf16-mixed: R starts at 0
            for name in self.names:
                total = self._add(total, params[name], self.ref[name])
        return total

    def _add(self, total: torch.Tensor | None, W: torch.Tensor, r: dict[str, torch.Tensor]) -> torch.Tensor:
        dev = W.device
        if self.variant == "block":
            p = block_penalty(W, r["U0"].to(dev), r["V0"].to(dev), r["C0"].to(dev))
        else:
            p = angle_penalty(W, r["U0"].to(dev), r["V0"].to(dev), r["Ut"].to(dev), r["St"].to(dev), r["Vt"].to(dev))
        return p.float() if total is None else total + p.float()

    # --- trainer state (resume) ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a resumed ``angle`` job needs (the references are recomputed from the base)."""
        if self.variant != "angle":
            return {}
        keep = ("Ut", "St", "Vt", "warm")
        return {
            "refreshed": self._refreshed,
            "bases": {n: {k: self.ref[n][k].detach().cpu() for k in keep} for n in self.names},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.variant != "angle" or not state:
            return
        self._refreshed = int(state["refreshed"])
        for n, tensors in state["bases"].items():
            self.ref[n].update(tensors)


FSDP_REFUSED = (
    "algo.rotation_reg.lam > 0 needs whole parameters on every process: not available with "
    "trainer/strategy=fsdp (sharded); use trainer/strategy=ddp or one process"
)


def check_whole(model: torch.nn.Module) -> None:
    """Refuse sharded parameters (FSDP's DTensors) in one line naming the key."""
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in model.parameters()):
        raise ValueError(FSDP_REFUSED)


def build(model: torch.nn.Module, algo: Any, targets: list[str]) -> RotationRegulariser | None:
    """The job's regulariser from ``algo.rotation_reg``, or None when it is off (λ = 0 or absent)."""
    cfg = algo.get("rotation_reg") if hasattr(algo, "get") else getattr(algo, "rotation_reg", None)
    if cfg is None or not cfg.lam:
        return None
    return RotationRegulariser(model, list(targets), cfg.k, cfg.variant, cfg.refresh, cfg.n_iter)
