"""The positive control's ground truth: planted SFT curves, RL deltas and the answer they imply.

What is planted (:data:`PEAK`; every number is a success rate on the 200-item frozen sets):

- SFT, per seed: OOD success rises from 0.10 to an interior peak of 0.40 at step 40 and
  declines to 0.18 at the last checkpoint (200); ID success rises throughout (0.05 -> 0.88).
  Each seed's curves are the planted ones shifted by a seed offset; the offsets sum to zero
  over the seeds, so the mean over seeds of a value is the planted value (a CI of the mean
  must cover it). Seed 2 has its OOD values at steps 30 and 40 swapped: seeds 0 and 1 peak at
  step 40 and seed 2 at step 30 (the mean curve still peaks at 40, so a peak taken from the
  mean curve instead of per seed is wrong for seed 2); across seeds the peak step is 36.7.
- GRPO from seven SFT checkpoints t: ΔOOD(t) = OOD(RL end) - OOD(SFT at t) is -0.06, -0.04
  before the window (t = 10, 40), +0.04, +0.10, +0.10 inside it (60, 80, 100) and +0.005, 0
  after it (150, 200), each seed off by a zero-sum deviation of ±0.015: every seed is above 0
  inside the window and at least one seed is at or below 0 outside it, so the recovery window
  (inits whose ΔOOD CI lies above 0) is exactly {60, 80, 100}, and a window taken from point
  estimates alone would wrongly include 150. ΔID is +0.03. The RL run's middle evaluation
  lies 0.05 above the straight line from SFT(t) to the end, so "RL end" must be the last
  evaluation, not the best. The best RL end stays below each seed's SFT peak.
- :data:`NULL`: OOD rises monotonically to its maximum at the last checkpoint (no peak) and
  ΔOOD is 0 ± 0.015 at every init (an empty window).

:func:`seed_values` turns a :class:`Plant` into each seed's curves; :mod:`sweeps.analysis.synthetic`
writes them as a study's run directories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Plant:
    """A synthetic study's ground truth: planted curves, deltas and the answer they imply."""

    name: str
    steps: tuple[int, ...]  # SFT checkpoints (evaluated), the first is 0
    ood: tuple[float, ...]  # SFT OOD success per checkpoint (mean over seeds)
    id: tuple[float, ...]  # SFT ID success per checkpoint
    d_ood: dict[int, float]  # RL init step -> ΔOOD (mean over seeds)
    peak: int | None  # the OOD peak step of the curve (None: no peak)
    window: tuple[int, ...]  # the recovery window: inits with ΔOOD > 0 in every seed
    d_id: float = 0.03  # ΔID at every init
    seeds: tuple[int, ...] = (0, 1, 2)
    items: int = 200  # evaluation items per split
    seed_spread: float = 0.01  # SFT curves: seed offsets spread * (j - (S-1)/2)
    rl_spread: float = 0.015  # ΔOOD, ΔID: per (init, seed) deviations, likewise
    rl_steps: tuple[int, ...] = (0, 20, 40)  # RL evaluations (0: the init weights again)
    rl_bump: float = 0.05  # middle RL evaluations above the straight line
    rng_seed: int = 0  # item ranks and the order of the offsets
    experiment: str = "tiny_demo"  # whose config the run directories carry
    rl_algo: str = "grpo"
    overrides: tuple[str, ...] = field(default=())  # extra Hydra overrides for every run
    seed_peaks: dict[int, int] = field(default_factory=dict)  # seed -> its own peak step: the OOD values
    # at that step and at ``peak`` are swapped in that seed

    def truth(self) -> dict[str, Any]:
        """What the analysis must find (the content of ``planted.json``): each seed's peak step,
        and the mean over seeds of every per-seed quantity (the zero-sum offsets make most of
        them exactly the planted curve's values)."""
        values = seed_values(self)
        peaks = {seed: self.peak_of(seed) for seed in self.seeds}
        mean = lambda xs: round(float(np.mean(xs)), 12) if len(xs) else None  # noqa: E731
        at_peak = lambda curve, seed: curve[self.steps.index(peaks[seed])]  # noqa: E731
        with_peak = [s for s in self.seeds if peaks[s] is not None]
        ratios = {}
        for t in sorted(self.d_ood):
            i = self.steps.index(t)
            r = [
                (v.rl_ood[t][-1] - v.ood[i]) / (max(v.ood) - v.ood[i])
                for v in values.values()
                if max(v.ood) - v.ood[i] > 1e-9
            ]
            if len(r) >= 2:  # fewer: the analysis reports no CI
                ratios[str(t)] = mean(r)
        return {
            "study": self.name,
            "seeds": list(self.seeds),
            "stage": self.rl_algo,
            "peak_steps": {str(s): p for s, p in peaks.items()},
            "peak_step": mean([peaks[s] for s in with_peak]),
            "peak_value": mean([at_peak(values[s].ood, s) for s in with_peak]),
            "id_at_peak": mean([at_peak(values[s].id, s) for s in with_peak]),
            "max_value": mean([max(v.ood) for v in values.values()]),
            "end_value": mean([v.ood[-1] for v in values.values()]),
            "id_end": mean([v.id[-1] for v in values.values()]),
            "window": list(self.window),
            "d_ood": {
                str(t): mean([v.rl_ood[t][-1] - v.rl_ood[t][0] for v in values.values()]) for t in sorted(self.d_ood)
            },
            "d_id": {
                str(t): mean([v.rl_id[t][-1] - v.rl_id[t][0] for v in values.values()]) for t in sorted(self.d_ood)
            },
            "recovery_ratio": ratios,
            "plant": {
                k: {str(a): b for a, b in v.items()} if isinstance(v, dict) else v for k, v in asdict(self).items()
            },
        }

    def peak_of(self, seed: int) -> int | None:
        """The OOD peak step planted for ``seed``."""
        return self.seed_peaks.get(seed, self.peak) if self.peak is not None else None


# The two controls (module doc): an interior peak at 40 and the window {60, 80, 100}; and none.
STEPS = (0, 10, 20, 30, 40, 60, 80, 100, 150, 200)
ID_CURVE = (0.05, 0.30, 0.45, 0.55, 0.62, 0.70, 0.76, 0.80, 0.85, 0.88)
PEAK = Plant(
    "control_peak",
    STEPS,
    ood=(0.10, 0.20, 0.30, 0.36, 0.40, 0.34, 0.28, 0.24, 0.20, 0.18),
    id=ID_CURVE,
    d_ood={10: -0.06, 40: -0.04, 60: 0.04, 80: 0.10, 100: 0.10, 150: 0.005, 200: 0.0},
    peak=40,
    window=(60, 80, 100),
    seed_peaks={2: 30},
)
NULL = Plant(
    "control_null",
    STEPS,
    ood=(0.10, 0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.20),
    id=ID_CURVE,
    d_ood={t: 0.0 for t in PEAK.d_ood},
    peak=None,
    window=(),
)
CONTROLS = (PEAK, NULL)


# --- the planted per-seed values -------------------------------------------------------------------
def offsets(n_seeds: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-sum per-seed offsets spread * (j - (S-1)/2), j = 0..S-1, in a seeded order."""
    return rng.permutation(spread * (np.arange(n_seeds) - (n_seeds - 1) / 2))


@dataclass
class SeedValues:
    """One seed's planted rates: SFT curves and, per init, the RL evaluations."""

    ood: list[float]
    id: list[float]
    rl_ood: dict[int, list[float]]  # init -> OOD at plant.rl_steps
    rl_id: dict[int, list[float]]


def seed_values(plant: Plant) -> dict[int, SeedValues]:
    """Every seed's rates (module doc), checked against the plant's stated answer."""
    if (
        plant.steps[0] != 0
        or list(plant.steps) != sorted(set(plant.steps))
        or len(plant.ood) != len(plant.steps)
        or len(plant.id) != len(plant.steps)
    ):
        raise ValueError(f"plant {plant.name}: steps must start at 0 and increase, with one ood and id value each")
    if set(plant.seed_peaks.values()) - set(plant.steps) or set(plant.seed_peaks) - set(plant.seeds):
        raise ValueError(f"plant {plant.name}: seed_peaks maps seeds of the plant to SFT checkpoints")
    if set(plant.d_ood) - set(plant.steps) or plant.rl_steps[0] != 0 or len(plant.rl_steps) < 2:
        raise ValueError(
            f"plant {plant.name}: RL inits must be SFT checkpoints, rl_steps must start at 0 and end later"
        )
    rng = np.random.default_rng(plant.rng_seed)
    n = len(plant.seeds)
    c_ood, c_id = offsets(n, plant.seed_spread, rng), offsets(n, plant.seed_spread, rng)
    e_ood = {t: offsets(n, plant.rl_spread, rng) for t in sorted(plant.d_ood)}
    e_id = {t: offsets(n, plant.rl_spread, rng) for t in sorted(plant.d_ood)}
    out = {}
    for j, seed in enumerate(plant.seeds):
        ood = [float(v + c_ood[j]) for v in plant.ood]
        if seed in plant.seed_peaks and plant.peak is not None:
            a, b = plant.steps.index(plant.peak), plant.steps.index(plant.seed_peaks[seed])
            ood[a], ood[b] = ood[b], ood[a]
        idv = [float(v + c_id[j]) for v in plant.id]
        rl_ood, rl_id = {}, {}
        for t, d in plant.d_ood.items():
            i = plant.steps.index(t)
            rl_ood[t] = _ramp(ood[i], ood[i] + d + e_ood[t][j], plant.rl_steps, plant.rl_bump, plant.items)
            rl_id[t] = _ramp(idv[i], idv[i] + plant.d_id + e_id[t][j], plant.rl_steps, 0.0, plant.items)
        out[seed] = SeedValues(ood, idv, rl_ood, rl_id)
    _check_plant(plant, out)
    return out


def _ramp(start: float, end: float, steps: Sequence[int], bump: float, items: int) -> list[float]:
    """Straight from ``start`` (step 0) to ``end`` (the last step); the middle points raised by
    ``bump`` and rounded to a multiple of 1/items."""
    last = steps[-1]
    mid = [round((start + (end - start) * s / last + bump) * items) / items for s in steps[1:-1]]
    return [float(start), *mid, float(end)]


def _check_plant(plant: Plant, values: dict[int, SeedValues]) -> None:
    """Refuse a plant whose stated answer its own numbers do not imply, or that files cannot hold."""
    for seed, v in values.items():
        rates = v.ood + v.id + [x for r in (*v.rl_ood.values(), *v.rl_id.values()) for x in r]
        for x in rates:
            if not 0 <= x <= 1 or abs(x * plant.items - round(x * plant.items)) > 1e-6:
                raise ValueError(
                    f"plant {plant.name}: seed {seed} has rate {x!r}, not a multiple of 1/{plant.items} in [0, 1]"
                )
        top = max(v.ood)
        first = v.ood.index(top)
        has_peak, peak = top - v.ood[-1] > 1e-9, plant.peak_of(seed)
        if (peak is None) == has_peak or (peak is not None and plant.steps[first] != peak):
            raise ValueError(f"plant {plant.name}: seed {seed}'s OOD curve does not peak at {peak}")
    for t in plant.d_ood:
        deltas = [v.rl_ood[t][-1] - v.rl_ood[t][0] for v in values.values()]
        if (t in plant.window) != (min(deltas) > 1e-9):
            raise ValueError(
                f"plant {plant.name}: init {t} is {'in' if t in plant.window else 'out of'} the window, "
                f"but the seeds' ΔOOD are {[round(d, 4) for d in deltas]}"
            )


# --- the files --------------------------------------------------------------------------------------
