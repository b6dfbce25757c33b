"""The study driver behind ``sweeps-study`` (:mod:`sweeps.cli.study`): a study's stages in order.

The experiment's ``plan`` names the grid: seeds, the RL algorithms and init checkpoints
(explicit steps and/or roles resolved from each seed's SFT results). :func:`run_study` runs the
stages in order, each as one Hydra multirun of ``sweeps-train`` (or the stage's own app) through
the launcher chosen on the command line, and waits for each: SFT with checkpoint evaluation -> RL
from the chosen checkpoints -> spectral -> analysis; a stage not built yet is skipped with a
message. Before launching it creates the MLflow experiment and one parent run when the tracking
config asks for one (``tracking.parent_run``), whose id every job receives (its run becomes a
child). Every job skips itself when done, so re-running a finished study costs seconds. Bad plans
fail before anything is submitted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps import progress, schema
from sweeps.cli import absolute_output_dir
from sweeps.runs import atomic_write_json

log = logging.getLogger("sweeps.study")


def stage_commands(cfg: DictConfig, launcher: str, extra: list[str], parent: str | None) -> list[tuple[str, list[str]]]:
    """(stage, argv) pairs in run order; validates the plan's axes first."""
    plan = cfg.plan
    seeds = list(plan.seeds)
    if not seeds:
        raise schema.ConfigError("plan.seeds is empty: a grid axis needs at least one value")
    if plan.get("rl") and not list(plan.rl.algos or []) and (plan.rl.get("init_steps") or plan.rl.get("init_roles")):
        raise schema.ConfigError("plan.rl.algos is empty: a grid axis needs at least one value")
    common = [f"hydra/launcher={launcher}", *extra, f"seed={','.join(map(str, seeds))}"]
    common += [f"parent_run_id={parent}"] if parent else []
    exe = str(Path(sys.executable).parent / "sweeps-train")
    cmds = [("sft", [exe, "-m", "algo=sft", *plan.sft.overrides, *common])]
    rl = plan.get("rl")
    if rl and rl.algos:
        steps, roles = list(rl.get("init_steps") or []), list(rl.get("init_roles") or [])
        from sweeps.analysis.roles import ROLES

        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise schema.ConfigError(f"plan.rl.init_roles has {unknown}, which match no role: use {sorted(ROLES)}")
        if not steps and not roles:
            raise schema.ConfigError(
                "plan.rl has algos but neither init_steps nor init_roles: name the SFT checkpoints to start from"
            )
        algos = ",".join(rl.algos)
        if steps:
            cmds.append(
                ("rl", [exe, "-m", f"algo={algos}", f"init.step={','.join(map(str, steps))}", *rl.overrides, *common])
            )
        if roles:
            cmds.append(("rl", [exe, "-m", f"algo={algos}", f"init.role={','.join(roles)}", *rl.overrides, *common]))
    return cmds


def stage_runs(cfg: DictConfig, argv: list[str]) -> list[Path]:
    """The run directories a stage's multirun writes (for its progress display): SFT's seeds, or
    the RL algorithms x init checkpoints (steps, or roles resolved per seed) x seeds."""
    from sweeps.analysis.roles import resolve
    from sweeps.runs.layout import run_dir, sft_init, with_variant

    def run(stage: str, init: str, seed: int) -> Path:
        return run_dir(cfg.paths.output_dir, cfg.study, stage, cfg.model.name, cfg.task.name, init, seed)

    axes = dict(a.split("=", 1) for a in argv if "=" in a and a.split("=", 1)[0] in ("algo", "init.step", "init.role"))
    seeds = list(cfg.plan.seeds)
    if axes.get("algo") == "sft":
        return [run("sft", with_variant("base", v), s) for v in sft_variants(cfg, argv) for s in seeds]
    algos = axes["algo"].split(",")
    if "init.step" in axes:
        return [run(a, sft_init(int(n)), s) for a in algos for n in axes["init.step"].split(",") for s in seeds]
    return [
        run(a, sft_init(resolve(r, run("sft", "base", s))), s)
        for a in algos
        for r in axes["init.role"].split(",")
        for s in seeds
    ]


def sft_variants(cfg: DictConfig, argv: list[str]) -> list[str]:
    """The SFT variants (run-directory names, ``sweeps.runs.rotation_variant``; "" = plain SFT) an
    SFT multirun writes: the product of the values swept on ``algo.rotation_reg.*`` keys in
    ``argv`` (e.g. ``algo.rotation_reg.lam=0,0.01,0.1``), the rest as ``cfg`` has it."""
    import itertools

    from sweeps.runs import rotation_variant

    prefix = "algo.rotation_reg."
    reg = cfg.algo.get("rotation_reg")
    swept = [
        (a.split("=", 1)[0][len(prefix) :], a.split("=", 1)[1].split(","))
        for a in argv
        if a.startswith(prefix) and "=" in a
    ]
    if reg is None or not swept:
        return [rotation_variant(reg)]
    base = OmegaConf.to_container(reg, resolve=True)
    names = []
    for combo in itertools.product(*(values for _, values in swept)):
        setting = {**base, **{k: _number(v) for (k, _), v in zip(swept, combo)}}
        names.append(rotation_variant(setting))
    return list(dict.fromkeys(names))


def _number(text: str) -> Any:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def check_roles(cfg: DictConfig) -> None:
    """Every RL init role resolves for every seed (run after SFT, before RL is submitted)."""
    from sweeps.analysis.roles import resolve
    from sweeps.runs import run_dir

    rl = cfg.plan.get("rl")
    for role in (rl.get("init_roles") or []) if rl else []:
        for seed in cfg.plan.seeds:
            sft = run_dir(cfg.paths.output_dir, cfg.study, "sft", cfg.model.name, cfg.task.name, "base", seed)
            resolve(role, sft)


def parent_run(cfg: DictConfig) -> str | None:
    """Create (or find) the study's MLflow experiment and parent run; None when the tracking
    config has no parent run (``tracking.parent_run: false``, e.g. ``tracking=none``)."""
    if not cfg.tracking.parent_run:
        return None
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.mlflow_tracker import ensure_experiment, init_store, retry

    init_store(cfg.tracking.uri)
    client = MlflowClient(cfg.tracking.uri)
    exp = retry(lambda: ensure_experiment(client, cfg.tracking.experiment or cfg.study))
    found = client.search_runs(
        [exp], filter_string=f"tags.`sweeps.role` = 'parent' and tags.`sweeps.study` = '{cfg.study}'"
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        exp, run_name=f"study/{cfg.study}", tags={"sweeps.role": "parent", "sweeps.study": cfg.study}
    )
    client.log_text(run.info.run_id, OmegaConf.to_yaml(cfg.plan), "plan.yaml")
    return run.info.run_id


def inputs_fingerprint(root: Path, argv: list[str]) -> str:
    """What a late stage (spectral, analysis) reads: the command line and every run's DONE,
    metrics.jsonl and spectral summary (path, size, mtime). Equal before a re-run and after the
    last run of the stage means the stage would redo identical work."""
    h = hashlib.sha256(json.dumps(argv).encode())
    from sweeps.runs import layout

    for f in sorted(layout.run_files(root, layout.DONE, layout.METRICS, layout.SPECTRAL_SUMMARY)):
        st = f.stat()
        h.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def run_study(cfg: DictConfig, launcher: str, extra: list[str]) -> dict[str, Any]:
    """Run the study ``cfg.plan`` describes through ``launcher``; ``extra`` are the command line's
    overrides, forwarded to every stage. Returns the stages run and the parent run's id."""
    absolute_output_dir(cfg)
    schema.validate(cfg)
    stage_commands(cfg, launcher, extra, None)  # validate the plan before anything runs
    parent = parent_run(cfg)
    extra = [e for e in extra if not e.startswith("paths.output_dir=")] + [f"paths.output_dir={cfg.paths.output_dir}"]
    done = []
    for stage, argv in stage_commands(cfg, launcher, extra, parent):
        if stage == "rl" and "rl" not in done:
            check_roles(cfg)
        log.info("stage %s: %s", stage, " ".join(argv[1:]))
        returncode = progress.watch(subprocess.Popen(argv), stage, stage_runs(cfg, argv))
        if returncode:
            raise RuntimeError(f"stage {stage} failed (exit {returncode}); re-run the same command to resume")
        done.append(stage)
    seeds = ",".join(map(str, cfg.plan.seeds))
    algos = ["sft", *((cfg.plan.get("rl") or {}).get("algos") or [])]
    late = [
        (
            "spectral",
            "sweeps-spectral",
            ["-m", f"hydra/launcher={launcher}", f"seed={seeds}", f"spectral.stages=[{','.join(algos)}]"],
        ),
        ("analysis", "sweeps-analyze", []),
    ]
    root = Path(cfg.paths.output_dir) / cfg.study
    outputs = {"spectral": None, "analysis": root / "analysis" / "analysis.json"}
    for stage, app, args in late:
        exe = Path(sys.executable).parent / app
        if not exe.exists() or not (cfg.plan.get(stage) or {}).get("enabled", True):
            log.info("stage %s: skipped (%s)", stage, "disabled" if exe.exists() else "not built yet")
            continue
        argv = [str(exe), *args, *extra, f"study={cfg.study}"]
        record = root / ".stages" / f"{stage}.json"
        previous = json.loads(record.read_text()).get("fingerprint") if record.is_file() else None
        if previous == inputs_fingerprint(root, argv[1:]) and (outputs[stage] is None or outputs[stage].is_file()):
            log.info("stage %s: up to date (same inputs as its last run): skipped", stage)
            done.append(stage)
            continue
        res = subprocess.run(argv)
        if res.returncode:
            raise RuntimeError(f"stage {stage} failed (exit {res.returncode})")
        atomic_write_json(record, {"fingerprint": inputs_fingerprint(root, argv[1:])})
        done.append(stage)
    summary = {"study": cfg.study, "stages": done, "parent_run_id": parent}
    atomic_write_json(Path(cfg.paths.output_dir) / cfg.study / "study.json", summary)
    return summary
