"""The analysis's positive control: synthetic studies with a planted answer.

    python -m sweeps.analysis.synthetic outputs/control                     # write, sweeps-analyze, check
    python -m sweeps.analysis.synthetic outputs/control2 analysis.method=BCa  # any sweeps-analyze override
    python -m sweeps.analysis.synthetic outputs/control --check-only        # the tables already there

A study whose answer is known tells whether ``sweeps-analyze`` can see an OOD peak and a
recovery window when they are there, and sees none when they are not, so that "no recovery"
in a real study is the model's result and not the pipeline's blind spot. :func:`write_study`
writes one such study; :func:`check` compares the analysis tables with what was planted.

**What is planted** (:data:`PEAK`; every number is a success rate on the 200-item frozen sets):

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

**Item-level data consistent with the rates.** Per seed and split a seeded permutation ranks
the items; at a checkpoint with rate p the items of rank < p·n are solved. The files' success
rates therefore equal the planted ones exactly (every planted value is a multiple of 1/n,
checked), and a checkpoint with a higher rate solves a superset of the items, as a model that
keeps what it knew would. A solved item's answer is the task's reference completion, a failed
one's the reference of another item, both graded by the task's own grader.

**The files are the jobs' own** (``sweeps.runs``, ``sweeps.evaluation``): ``config.yaml`` and
``signature`` of the experiment's composed config (``experiment=tiny_demo`` by default, with
the planted steps as ``trainer.save_every`` and the inits as ``plan.rl.init_steps``),
``metrics.jsonl`` (``train/loss`` and ``train/lr`` every step, the evaluation records of
``evaluation.summarize`` at each checkpoint), ``ckpt/step=N/`` with ``eval.json`` and
``episodes_{id,ood}.jsonl`` (``evaluation.save_episodes``), ``DONE`` (the jobs' summary), the
study's frozen ``evalsets/``, and ``planted.json`` (the truth) at the study root. Not written:
model weights and trainer states (nothing can be trained or resumed from these directories),
MLflow records, spectral summaries (the report says rotation↔OOD is unavailable).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.runs import MetricsWriter, Run, atomic_write_json, atomic_write_text, latest_values, run_dir, signature

SPLITS = ("id", "ood")


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
def compose(plant: Plant, output_dir: Path, rl: bool) -> Any:
    """The experiment's config for the SFT runs (``rl=False``) or the RL runs, as the jobs compose it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import sweeps.schema  # noqa: F401  (registers the schemas)
    from sweeps import CONF_DIR

    steps = ",".join(map(str, plant.steps[1:]))
    over = [
        f"experiment={plant.experiment}",
        f"study={plant.name}",
        f"paths.output_dir={output_dir}",
        "tracking=none",
        f"eval.size={plant.items}",
        f"trainer.max_steps={plant.steps[-1]}",
        f"trainer.save_every=[{steps}]",
        "trainer.eval_at_start=true",
        f"plan.seeds=[{','.join(map(str, plant.seeds))}]",
        f"plan.rl.algos=[{plant.rl_algo}]",
        f"plan.rl.init_steps=[{','.join(map(str, sorted(plant.d_ood)))}]",
        "plan.rl.init_roles=[]",
        "plan.spectral.enabled=false",
        *plant.overrides,
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=over)
        rl_over = [
            *cfg.plan.rl.overrides,
            f"trainer.max_steps={plant.rl_steps[-1]}",
            f"trainer.save_every=[{','.join(map(str, plant.rl_steps[1:]))}]",
            "trainer.eval_at_start=true",
        ]
        if rl:
            rl_init = [f"algo={plant.rl_algo}", f"init.step={min(plant.d_ood)}"]  # write_study sets each init
            cfg = hydra_compose(config_name="train", overrides=[*over, *rl_init, *rl_over])
    cfg.plan.rl.overrides = rl_over  # what a study would pass to these RL runs
    return cfg


class Episodes:
    """Per split: the frozen evaluation items, one solved and one failed episode of each, and
    the item ranks of each seed (module doc)."""

    def __init__(self, plant: Plant, task: Any, task_cfg: dict[str, Any], eval_seed: int, root: Path):
        from sweeps.episodes import Episode, Turn
        from sweeps.evaluation import frozen_evalset

        self.task, self.plant = task, plant
        self.examples = {
            s: frozen_evalset(task, task_cfg, s, plant.items, eval_seed, root / "evalsets") for s in SPLITS
        }
        self.solved, self.failed = {}, {}
        for split, exs in self.examples.items():
            refs = [task.reference_completion(ex) for ex in exs]
            self.solved[split], self.failed[split] = [], []
            for i, ex in enumerate(exs):
                grade = task.grade(ex, refs[i])
                if not grade.correct:
                    raise ValueError(f"task {task.name}: the reference completion of {split} item {i} grades as wrong")
                self.solved[split].append(Episode(i, [Turn([], [], [], refs[i], grade.reward, True, [])], success=True))
                wrong = next(
                    ((r, g) for r in refs[i + 1 :] + refs[:i] + ["0"] for g in [task.grade(ex, r)] if not g.correct),
                    None,
                )
                if wrong is None:
                    raise ValueError(f"task {task.name}: no wrong answer found for {split} item {i}")
                text, g = wrong
                turn = Turn([], [], [], text, g.reward, False, list(g.errors))
                self.failed[split].append(Episode(i, [turn] * task.max_attempts))
        rng = np.random.default_rng([plant.rng_seed, 1])
        self.ranks = {(seed, s): rng.permutation(plant.items) for seed in plant.seeds for s in SPLITS}

    def at(self, seed: int, split: str, rate: float) -> list[Any]:
        """The episodes of a checkpoint with success ``rate``: items of rank < rate * n solved."""
        k = round(rate * self.plant.items)
        ranks = self.ranks[(seed, split)]
        return [self.solved[split][i] if ranks[i] < k else self.failed[split][i] for i in range(self.plant.items)]


def write_run(
    cfg: Any, stage: str, init: str, seed: int, evals: dict[int, dict[str, float]], episodes: Episodes
) -> Path:
    """One finished run directory: config, signature, metrics, checkpoints' evaluations, DONE."""
    from omegaconf import OmegaConf

    from sweeps.evaluation import save_episodes, summarize
    from sweeps.secrets import config_yaml

    cfg.seed = seed
    run = Run(run_dir(cfg.paths.output_dir, cfg.study, stage, cfg.model.name, cfg.task.name, init, seed))
    if run.path.exists():
        raise FileExistsError(f"{run.path} exists: write a synthetic study into an empty paths.output_dir")
    run.claim(signature(OmegaConf.to_container(cfg, resolve=True)), config_yaml(cfg))
    writer = MetricsWriter(run.metrics_file)
    lr, last = float(cfg.algo.optimizer.lr), max(evals)
    for step in range(0, last + 1):
        if step and step % cfg.trainer.log_every == 0:
            writer.write(step, {"train/loss": 2.0 / (1 + step / 10), "train/lr": lr})
        if step in evals:
            metrics: dict[str, float] = {}
            for split in SPLITS:
                eps = episodes.at(seed, split, evals[step][split])
                metrics.update({f"eval/{split}/{k}": v for k, v in summarize(episodes.task, eps).items()})
                save_episodes(run.ckpt(step) / f"episodes_{split}.jsonl", episodes.examples[split], eps)
            atomic_write_text(
                run.ckpt(step) / "eval.json", json.dumps({"step": step, **metrics}, sort_keys=True, indent=1)
            )
            writer.write(step, metrics)
    writer.close()
    run.mark_done({**latest_values(run.read_metrics()), "checkpoints": [s for s, _ in run.checkpoints()]})
    return run.path


def write_study(plant: Plant, output_dir: str | Path) -> Path:
    """Write the synthetic study ``plant`` under ``output_dir``; returns the study directory."""
    from omegaconf import OmegaConf

    from sweeps import schema
    from sweeps.runs import ckpt_name

    output_dir = Path(output_dir).expanduser().resolve()
    values = seed_values(plant)
    sft_cfg, rl_cfg = compose(plant, output_dir, rl=False), compose(plant, output_dir, rl=True)
    task = schema.validate(sft_cfg)
    episodes = Episodes(
        plant, task, OmegaConf.to_container(sft_cfg.task, resolve=True), sft_cfg.eval.seed, output_dir / plant.name
    )
    for seed, v in values.items():
        write_run(
            sft_cfg,
            "sft",
            "base",
            seed,
            {s: {"id": i, "ood": o} for s, i, o in zip(plant.steps, v.id, v.ood)},
            episodes,
        )
        for t in sorted(plant.d_ood):
            rl_cfg.init.step = t
            evals = {s: {"id": i, "ood": o} for s, i, o in zip(plant.rl_steps, v.rl_id[t], v.rl_ood[t])}
            write_run(rl_cfg, plant.rl_algo, f"sft-{ckpt_name(t)}", seed, evals, episodes)
    root = output_dir / plant.name
    atomic_write_json(root / "planted.json", plant.truth())
    return root


# --- the comparison ---------------------------------------------------------------------------------
def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _window(v: Any) -> list[int]:
    return [int(x) for x in (json.loads(v) if isinstance(v, str) else v)]


def check(truth: dict[str, Any], sft_seeds: list[dict], summary: list[dict], windows: list[dict]) -> list[str]:
    """Where the analysis (rows of ``sft_seeds``, ``summary``, ``windows``, as ``curves.Results``
    holds them or as their CSV files) misses the planted ``truth``; empty when it finds it all."""
    bad: list[str] = []
    peak = truth["peak_step"]
    seeds = {int(r["seed"]): r for r in sft_seeds}
    if sorted(seeds) != sorted(truth["seeds"]):
        bad.append(f"SFT seeds {sorted(seeds)}, planted {truth['seeds']}")
    for seed, r in sorted(seeds.items()):
        found = None if r["peak_step"] in (None, "") else int(_f(r["peak_step"]))
        planted = truth["peak_steps"].get(str(seed))
        if found != planted:
            bad.append(f"seed {seed}: OOD peak step {found}, planted {planted} ({r.get('no_peak') or 'a peak'})")
    rows = {(r["stage"], r.get("init") or "", r["metric"]): r for r in summary}

    def covers(key: tuple[str, str, str], value: float, what: str, width: bool = True) -> None:
        r = rows.get(key)
        if r is None:
            bad.append(f"{what}: no {key[2]} row")
            return
        est, lo, hi = _f(r["estimate"]), _f(r["lo"]), _f(r["hi"])
        unavailable = not width and math.isnan(lo) and math.isnan(hi)  # BCa on identical seeds: no CI, by design
        why = (
            "the estimate is not the planted value"
            if not math.isclose(est, value, abs_tol=1e-9)
            else ""
            if unavailable
            else "the CI misses it"
            if not (lo <= value + 1e-9 and value - 1e-9 <= hi)
            else "a CI of zero width"
            if width and not lo < hi
            else ""
        )
        if why:
            bad.append(f"{what}: {key[2]} = {est:.4g} [{lo:.4g}, {hi:.4g}], planted {value:.4g}: {why}")

    step = rows.get(("sft", "", "ood_peak_step"))
    found = _f(step["estimate"]) if step else math.nan
    if peak is None and math.isfinite(found):
        bad.append(f"across seeds: OOD peak step {found}, planted none")
    if peak is not None:
        covers(("sft", "", "ood_peak_step"), peak, "across seeds", width=False)  # zero width when every seed agrees
        covers(("sft", "", "ood_peak_value"), truth["peak_value"], "SFT")
        covers(("sft", "", "id_at_peak"), truth["id_at_peak"], "SFT")
    covers(("sft", "", "ood_max_value"), truth["max_value"], "SFT")
    covers(("sft", "", "ood_end_value"), truth["end_value"], "SFT")
    covers(("sft", "", "id_end_value"), truth["id_end"], "SFT")
    covers(
        ("sft", "", "ood_drop_crossfit"), truth["max_value"] - truth["end_value"], "SFT", width=False
    )  # same in every seed
    stage = truth["stage"]
    for t, d in truth["d_ood"].items():
        init = f"sft-step={int(t):06d}"
        covers((stage, init, "d_ood"), d, f"{stage} from {t}")
        covers((stage, init, "d_id"), truth["d_id"][t], f"{stage} from {t}")
        if t in truth["recovery_ratio"]:
            covers((stage, init, "recovery_ratio"), truth["recovery_ratio"][t], f"{stage} from {t}")
    win = [w for w in windows if w["stage"] == stage]
    if len(win) != 1 or _window(win[0]["window"]) != truth["window"]:
        bad.append(f"{stage}: recovery window {[_window(w['window']) for w in win]}, planted {truth['window']}")
    return bad


def check_study(study_dir: str | Path) -> list[str]:
    """:func:`check` on the tables ``sweeps-analyze`` wrote into ``<study_dir>/analysis``."""
    import csv

    study_dir = Path(study_dir)
    truth = json.loads((study_dir / "planted.json").read_text())
    tables = {}
    for name in ("sft_seeds", "summary", "windows"):
        path = study_dir / "analysis" / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run sweeps-analyze study={study_dir} first")
        with open(path, newline="") as fh:
            tables[name] = list(csv.DictReader(fh))
    return check(truth, tables["sft_seeds"], tables["summary"], tables["windows"])


def _planted(plant: Plant) -> str:
    peaks = {s: plant.peak_of(s) for s in plant.seeds}
    return f"OOD peak step per seed {peaks}, recovery window {list(plant.window)}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output_dir", type=Path, help="where the studies control_peak and control_null go")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write-only", action="store_true", help="only write the studies")
    mode.add_argument(
        "--check-only",
        action="store_true",
        help="only compare the tables an earlier sweeps-analyze wrote with planted.json",
    )
    ap.add_argument("overrides", nargs="*", help="sweeps-analyze overrides, e.g. analysis.method=BCa")
    args = ap.parse_args(argv)
    tracking = [] if any(o.startswith("tracking=") for o in args.overrides) else ["tracking=none"]
    exe = str(Path(sys.executable).parent / "sweeps-analyze")
    failed = 0
    for plant in CONTROLS:
        root = args.output_dir.expanduser().resolve() / plant.name
        if not args.check_only:
            if root.exists():
                raise SystemExit(
                    f"error: {root} exists: the control writes fresh studies; delete it or choose another output_dir"
                )
            write_study(plant, args.output_dir)
            print(f"wrote {root} (planted: {_planted(plant)})")
            if args.write_only:
                continue
            res = subprocess.run([exe, f"study={root}", *tracking, *args.overrides], capture_output=True, text=True)
            if res.returncode != 0:
                print(f"FAIL {plant.name}: sweeps-analyze exited {res.returncode}: {res.stderr.strip()[-500:]}")
                failed += 1
                continue
        try:
            bad = check_study(root)
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: {err}") from None
        failed += bool(bad)
        print(
            f"{'FAIL' if bad else 'ok'} {plant.name}: "
            + (
                "; ".join(bad)
                if bad
                else f"the analysis finds the planted {_planted(plant)}; report {root}/report/index.html"
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
