"""Online rotation monitor: principal angles of chosen weights against a reference, during training.

The paper suggests that rotation of the top singular subspaces flags the OOD decline early. This
callback makes it visible while a job runs: at train start it takes the exact top-k bases
(U_ref [m, k], V_ref [n, k]) of every matrix whose name matches a regex, and every
``every_n_steps`` optimiser steps it estimates the current top-k bases and records

    rotation/angle_mean, rotation/chordal_normalised               means over matrices and U/V
    rotation/<name>/u_angle_mean, .../v_angle_mean                 per matrix
    rotation/<name>/u_chordal_normalised, .../v_chordal_normalised

through ``record(step, metrics)`` (the job's ``Recorder.record``, so the values land in
metrics.jsonl and MLflow). <name> is the parameter name without ``.weight``, dots as slashes.
Angles are Knyazev–Argentati in float64 (``sweeps.spectral.principal_angles``); the chordal
distance is sqrt(Σ sin²θ / k) ∈ [0, 1] (see ``sweeps.spectral.CONVENTION``).

Cost. The current bases come from a few steps of subspace iteration warm-started from the
previous estimate (k + oversample columns): between two measurements the weights move little,
so ``n_iter`` = 2 steps of two thin matrix products each are enough, O(m n (k + p)) per matrix,
instead of a full SVD. Simplification: with a small spectral gap at k the estimate lags the
exact top-k subspace; the offline stage (``sweeps-spectral``) gives exact values per checkpoint.
``reference="previous"`` measures the rotation since the last measurement instead of since the
start. After a resume the reference is the resumed weights, not the original start.
LoRA: the weights read are the merged ones (``sweeps.models.checkpoint.merged_weights``).
Several processes: every rank gathers the (possibly sharded) weights together; rank 0 alone
decomposes them and records the metrics.

How to add it to a job (e.g. the SFT job, behind a ``trainer.rotation_monitor`` option)::

    from sweeps.modules.rotation_monitor import RotationMonitor
    callbacks.append(RotationMonitor(recorder.record, every_n_steps=10,
                                     targets=list(cfg.model.spectral_targets), k=16))
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from sweeps.parallel import world
from sweeps.spectral.decompositions import subspace_iteration, top_k_svd
from sweeps.spectral.metrics import check_k, principal_angles


def _weights(model: torch.nn.Module, targets: list[str]) -> dict[str, torch.Tensor]:
    """{name: 2-D weight} for names matching any regex; LoRA weights merged out of place."""
    from sweeps.models.checkpoint import merged_weights

    return {n: t for n, t in merged_weights(model) if t.ndim == 2 and any(re.search(rx, n) for rx in targets)}


def _key(name: str) -> str:
    return name.removesuffix(".weight").replace(".", "/")


class RotationMonitor(L.Callback):
    """Logs mean principal angle and normalised chordal distance of target matrices (see module doc)."""

    def __init__(
        self,
        record: Callable[[int, dict[str, float]], Any],
        every_n_steps: int,
        targets: list[str],
        k: int,
        reference: str = "start",
        n_iter: int = 2,
        oversample: int = 8,
    ):
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be > 0, got {every_n_steps}")
        if reference not in ("start", "previous"):
            raise ValueError(f"reference={reference!r}: use start or previous")
        self.record, self.every, self.targets, self.k = record, every_n_steps, list(targets), k
        self.reference, self.n_iter, self.oversample = reference, n_iter, oversample
        self.ref: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (U_ref [m, k], V_ref [n, k])
        self.warm: dict[str, torch.Tensor] = {}  # name -> V estimate [n, k + p] for the next start
        self._last = -1

    @staticmethod
    def _model(module: Any) -> torch.nn.Module:
        return getattr(module, "model", module)

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        weights = _weights(self._model(module), self.targets)  # every rank: a gather when sharded
        if not world.world().main:
            return
        if not weights:
            raise ValueError(f"RotationMonitor: no 2-D parameter matches {self.targets}")
        for name, W in weights.items():
            m, n = W.shape
            check_k(self.k, m)
            check_k(self.k, n)
            W = W.detach().to(torch.float64)  # [m, n]
            U, S, V = top_k_svd(W, min(self.k + self.oversample, m, n), "full")  # exact at the start
            self.ref[name] = (U[:, : self.k], V[:, : self.k])  # [m, k], [n, k]
            self.warm[name] = V  # [n, k + p]

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(getattr(module, "stage_step", trainer.global_step))
        if step == self._last or step == 0 or step % self.every:
            return
        self._last = step
        metrics = self.measure(module)
        if world.world().main:
            self.record(step, metrics)

    @torch.no_grad()
    def measure(self, module: Any) -> dict[str, float]:
        """Current top-k bases (warm-started subspace iteration) vs the reference, as metrics."""
        out: dict[str, float] = {}
        weights = _weights(self._model(module), self.targets)  # every rank: a gather when sharded
        if not world.world().main:
            return out
        for name, W in weights.items():
            if name not in self.ref:
                continue
            W = W.detach().to(torch.float64)  # [m, n]
            start = self.warm[name].to(W.device)  # [n, k + p]
            (U, _, V), self.warm[name] = subspace_iteration(W, start, self.n_iter, self.k)  # [m, k], [n, k]
            U_ref, V_ref = self.ref[name]
            for side, A, B in (("u", U_ref, U), ("v", V_ref, V)):
                theta = principal_angles(A.to(B.device), B)  # [k]
                out[f"rotation/{_key(name)}/{side}_angle_mean"] = theta.mean().item()
                out[f"rotation/{_key(name)}/{side}_chordal_normalised"] = math.sqrt(theta.sin().pow(2).mean().item())
            if self.reference == "previous":
                self.ref[name] = (U, V)
        angles = [v for k, v in out.items() if k.endswith("_angle_mean")]
        chordal = [v for k, v in out.items() if k.endswith("_chordal_normalised")]
        out["rotation/angle_mean"] = sum(angles) / len(angles)
        out["rotation/chordal_normalised"] = sum(chordal) / len(chordal)
        return out
