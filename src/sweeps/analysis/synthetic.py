"""The analysis's positive control: synthetic studies with a planted answer.

    python -m sweeps.analysis.synthetic outputs/control                     # write, sweeps-analyze, check
    python -m sweeps.analysis.synthetic outputs/control2 analysis.method=BCa  # any sweeps-analyze override
    python -m sweeps.analysis.synthetic outputs/control --check-only        # the tables already there

A study whose answer is known tells whether ``sweeps-analyze`` can see an OOD peak and a
recovery window when they are there, and sees none when they are not, so that "no recovery"
in a real study is the model's result and not the pipeline's blind spot. :func:`write_study`
writes one such study; :func:`~sweeps.analysis.control_check.check` compares the analysis
tables with what was planted.

**What is planted**: :mod:`sweeps.analysis.control_plant` (:data:`PEAK`, :data:`NULL`); the
comparison with the analysis's tables: :mod:`sweeps.analysis.control_check`.

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
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.analysis.control_check import check, check_study
from sweeps.analysis.control_plant import CONTROLS, NULL, PEAK, Plant, seed_values
from sweeps.runs import MetricsWriter, Run, atomic_write_json, atomic_write_text, latest_values, layout

SPLITS = ("id", "ood")
__all__ = ["CONTROLS", "NULL", "PEAK", "Plant", "check", "check_study", "compose", "seed_values", "write_study"]


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
    from sweeps.evaluation import save_episodes, summarize
    from sweeps.launching import job_signature
    from sweeps.secrets import config_yaml

    cfg.seed = seed
    run = Run(layout.run_dir(cfg.paths.output_dir, cfg.study, stage, cfg.model.name, cfg.task.name, init, seed))
    if run.path.exists():
        raise FileExistsError(f"{run.path} exists: write a synthetic study into an empty paths.output_dir")
    run.claim(job_signature(cfg), config_yaml(cfg))
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
            layout.SFT,
            layout.BASE,
            seed,
            {s: {"id": i, "ood": o} for s, i, o in zip(plant.steps, v.id, v.ood)},
            episodes,
        )
        for t in sorted(plant.d_ood):
            rl_cfg.init.step = t
            evals = {s: {"id": i, "ood": o} for s, i, o in zip(plant.rl_steps, v.rl_id[t], v.rl_ood[t])}
            write_run(rl_cfg, plant.rl_algo, layout.sft_init(t), seed, evals, episodes)
    root = output_dir / plant.name
    atomic_write_json(root / "planted.json", plant.truth())
    return root


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
