"""The spectral stage over a study's run directories: references, tables, summary, MLflow.

For every finished (DONE) run directory of the configured stages with the config's model, task
and seed, for every checkpoint t and every reference r the stage writes, atomically,

    <run>/spectral/<r>/step=NNNNNN.csv   one row per target matrix (``stream.compare``)
    <run>/spectral/summary.csv           per (step, reference, group) means over matrices,
                                         group = all | layer<i> | <matrix type>
    <run>/spectral/svd_error.csv         the decomposition's error vs the full SVD (sample)
    <run>/spectral/config.json           the settings the tables were computed with

and mirrors the new rows into the run's own MLflow run (``mlflow.json``) as
``spectral/<r>/<metric>``, ``spectral/<r>/layer<i>/<metric>``, ``spectral/<r>/<matrix>/<metric>``
and ``spectral/<r>/layer<i>/<matrix>/<metric>`` at step t, with the metric conventions as a
param and tag. Existing tables are skipped, so a re-run only reads directory listings. Tables
computed with other settings (k, method, metrics, targets) are refused, not mixed.

References (``REFERENCES``): ``base`` = the first checkpoint of the SFT run of the same model,
task and seed (or ``spectral.base_path``); ``ood_peak``, ``id_peak``, ``sft_end`` = that SFT
run's checkpoint of the role (``sweeps.analysis.roles``); ``previous`` = the run's preceding
checkpoint (for an RL run's first checkpoint, the SFT checkpoint it started from).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.analysis.roles import ROLES, resolve
from sweeps.analysis.tables import to_csv
from sweeps.runs import Run, atomic_write_json, atomic_write_text, layout
from sweeps.schema import ConfigError
from sweeps.threads import set_threads

from .cache import SVDCache
from .checkpoints import Checkpoint, select_targets
from .decompositions import svd_error_report
from .metrics import CONVENTION
from .options import Options, effective_k, resolve_device
from .stream import compare

log = logging.getLogger("sweeps.spectral")
ID_COLUMNS = ("name", "layer", "matrix", "m", "n")
SEMANTIC = ("k", "clip_k", "method", "oversample", "n_iter", "metrics", "update_top", "base_path")


@dataclass
class RunContext:
    """What resolving a reference needs to know about one run directory."""

    run: Run
    sft_run: Path
    checkpoints: list[tuple[int, Path]]
    base_path: Path | None = None
    init_ckpt: Path | None = None
    memo: dict[str, Path] = field(default_factory=dict)


def _base(ctx: RunContext, i: int) -> Path:
    if ctx.base_path is not None:
        return ctx.base_path
    first = Run(ctx.sft_run).checkpoints()
    if not first:
        raise FileNotFoundError(f"reference base: the SFT run {ctx.sft_run} has no checkpoints")
    return first[0][1]


def _role(role: str) -> Callable[[RunContext, int], Path]:
    return lambda ctx, i: Run(ctx.sft_run).ckpt(resolve(role, ctx.sft_run))


def _previous(ctx: RunContext, i: int) -> Path | None:
    return ctx.checkpoints[i - 1][1] if i > 0 else ctx.init_ckpt


REFERENCES: dict[str, Callable[[RunContext, int], Path | None]] = {
    "base": _base,
    **{role: _role(role) for role in ROLES},
    "previous": _previous,
}
PER_CHECKPOINT = {"previous"}  # references that change with the checkpoint (never disk-cached)


def reference_path(name: str, ctx: RunContext, i: int) -> Path | None:
    if name in PER_CHECKPOINT:
        return REFERENCES[name](ctx, i)
    if name not in ctx.memo:
        ctx.memo[name] = REFERENCES[name](ctx, i)
    return ctx.memo[name]


# --- finding runs ---------------------------------------------------------------------------------
def find_runs(cfg: DictConfig) -> list[Path]:
    """DONE run directories of ``spectral.stages`` for the config's model, task and seed."""
    root = Path(cfg.paths.output_dir) / cfg.study
    found = [
        p
        for stage in cfg.spectral.stages
        for _, p in layout.runs(root, stage, cfg.model.name, cfg.task.name, seed=cfg.seed)
    ]
    if not found:
        raise FileNotFoundError(
            f"no run directories for stages {list(cfg.spectral.stages)} of model={cfg.model.name} "
            f"task={cfg.task.name} seed={cfg.seed} under {root}: run sweeps-train with the same "
            f"study, model, task, seed and paths.output_dir first"
        )
    for p in found:
        if not Run(p).done:
            log.warning("skip %s: not finished (no DONE)", p)
    return [p for p in found if Run(p).done]


def run_context(cfg: DictConfig, path: Path) -> RunContext:
    run = Run(path)
    own = OmegaConf.load(path / "config.yaml") if (path / "config.yaml").is_file() else cfg
    key = layout.parse(path)
    sft_study = OmegaConf.select(own, "init.sft_study") or cfg.study
    sft = (
        path
        if key.stage == layout.SFT
        else layout.run_dir(
            cfg.paths.output_dir, sft_study, layout.SFT, cfg.model.name, cfg.task.name, layout.BASE, cfg.seed
        )
    )
    init_ckpt = layout.sft_init_ckpt(key, sft)
    base = Path(cfg.spectral.base_path) if cfg.spectral.base_path else None
    return RunContext(run, sft, run.checkpoints(), base, init_ckpt)


# --- files ----------------------------------------------------------------------------------------
def table_path(run: Path, ref: str, step: int) -> Path:
    return layout.spectral_table(run, ref, step)


def check_settings(run: Path, settings: dict[str, Any]) -> None:
    """Bind <run>/spectral to these settings; refuse tables computed with others."""
    f = run / "spectral" / "config.json"
    if f.is_file():
        stored = json.loads(f.read_text())
        diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
        if diff:
            raise ConfigError(
                f"{run / 'spectral'} holds tables computed with other settings ("
                + ", ".join(f"{k}={a} there, {b} now" for k, (a, b) in diff.items())
                + "): delete that folder to recompute"
            )
    else:
        atomic_write_json(f, settings)


def read_tables(run: Path) -> list[dict[str, Any]]:
    rows = []
    for ref, step, f in layout.spectral_tables(run):
        with open(f) as fh:
            rows += [{"step": step, "reference": ref, **r} for r in csv.DictReader(fh)]
    return rows


def group_means(rows: list[dict[str, Any]], per_matrix: bool = False) -> dict[str, dict[str, float]]:
    """{group: {metric: mean over the rows of that group}}, groups "" (all), layer<i>/, <matrix>/
    (and layer<i>/<matrix>/ with ``per_matrix``), in order of first appearance."""
    metrics = [c for c in rows[0] if c not in ID_COLUMNS + ("step", "reference")]
    groups: dict[str, list[dict[str, Any]]] = {"": rows}
    for r in rows:
        layer = f"layer{r['layer']}/" if int(r["layer"]) >= 0 else ""
        keys = [layer, f"{r['matrix']}/"] + ([f"{layer}{r['matrix']}/"] if per_matrix else [])
        for key in dict.fromkeys(k for k in keys if k):  # in this order, whatever the hash seed
            groups.setdefault(key, []).append(r)
    return {g: {m: sum(float(r[m]) for r in rs) / len(rs) for m in metrics} for g, rs in groups.items()}


def write_summary(run: Path) -> int:
    """<run>/spectral/summary.csv from every table; returns the number of rows."""
    by_pair: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in read_tables(run):
        by_pair.setdefault((r["step"], r["reference"]), []).append(r)
    out = [
        {"step": s, "reference": ref, "group": g.rstrip("/") or "all", **means}
        for (s, ref), rows in sorted(by_pair.items())
        for g, means in group_means(rows).items()
    ]
    if out:
        atomic_write_text(run / "spectral" / "summary.csv", to_csv(out))
    return len(out)


# --- MLflow ---------------------------------------------------------------------------------------
def mlflow_records(new: list[tuple[int, str, list[dict]]], per_matrix: bool) -> list[dict[str, Any]]:
    return [
        {
            "step": step,
            **{f"spectral/{ref}/{g}{m}": v for g, ms in group_means(rows, per_matrix).items() for m, v in ms.items()},
        }
        for step, ref, rows in new
    ]


def log_mlflow(run: Path, records: list[dict[str, Any]], tags: dict[str, str]) -> None:
    """Push records into the run's existing MLflow run (mlflow.json); failures only warn."""
    state = run / "mlflow.json"
    if not records or not state.is_file():
        return
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.mlflow_tracker import log_records, retry

    info = json.loads(state.read_text())
    try:
        client = MlflowClient(info["tracking_uri"])
        retry(lambda: log_records(client, info["run_id"], records))
        for key, value in tags.items():
            retry(lambda key=key, value=value: client.set_tag(info["run_id"], key, value))
        try:
            client.log_param(info["run_id"], "spectral.convention", CONVENTION)
        except Exception:  # noqa: BLE001 - already logged by an earlier invocation
            pass
    except Exception as err:  # noqa: BLE001 - the tables stay the source of truth
        log.warning("MLflow logging for %s failed (%s); the tables under spectral/ are complete", run, err)


# --- the stage ------------------------------------------------------------------------------------
def options(spec: DictConfig, device: str) -> Options:
    return Options(
        k=spec.k,
        method=spec.method,
        clip_k=spec.clip_k,
        oversample=spec.oversample,
        n_iter=spec.n_iter,
        update_top=spec.update_top,
        metrics=tuple(spec.metrics),
        device=device,
    )


def report_svd_error(run: Path, tgt: Checkpoint, names: list[str], opts: Options, sample: int) -> dict[str, float]:
    rows = []
    for name in names[:sample]:
        W = tgt.load(name, opts.device)  # [m, n]
        rows.append(
            {
                "name": name,
                "k": effective_k(tuple(W.shape), opts),
                "method": opts.method,
                **svd_error_report(W, effective_k(tuple(W.shape), opts), opts),
            }
        )
    atomic_write_text(run / "spectral" / "svd_error.csv", to_csv(rows))
    keys = ("sv_max_rel", "sv_rel_l2", "u_sin_max", "v_sin_max")
    return {f"spectral/svd_error/{k}": max(r[k] for r in rows) for k in keys}


def target_names(cfg: DictConfig, ctx: RunContext, opts: Options) -> list[str]:
    """Target names of the run's first checkpoint; bad regexes and k fail here, before any write."""
    if not ctx.checkpoints:
        raise FileNotFoundError(f"run {ctx.run.path} has no checkpoints under ckpt/")
    first = Checkpoint(ctx.checkpoints[0][1])
    names = select_targets(first.names(), cfg.model.spectral_targets, first.path)
    for name in names:
        if len(first.shapes[name]) != 2:
            raise ValueError(
                f"spectral target {name} in {first.where(name)} is not a matrix: {list(first.shapes[name])}"
            )
        effective_k(first.shapes[name], opts)
    return names


def keeps_target(refs: dict[str, Path | None]) -> bool:
    """Whether a target's decompositions stay cached after its comparisons: they serve the other
    references and the next checkpoint's "previous"."""
    return "previous" in refs or sum(p is not None for p in refs.values()) > 1


def analyse_checkpoint(
    path: Path, step: int, ckpt: Path, refs: dict[str, Path | None], names: list[str], cache: SVDCache, opts: Options
) -> list[tuple[int, str, list[dict]]]:
    """Write one checkpoint's table against each resolved reference; returns (step, ref, rows)."""
    tgt, new = Checkpoint(ckpt), []
    keep = keeps_target(refs)
    for r, ref_path in refs.items():
        if ref_path is None:
            continue  # e.g. "previous" of an SFT run's first checkpoint
        ref = Checkpoint(ref_path)
        rows = compare(ref, tgt, names, cache, opts, keep_target=keep)
        atomic_write_text(table_path(path, r, step), to_csv(rows))
        if r not in PER_CHECKPOINT:
            cache.persist(ref)
        new.append((step, r, rows))
    return new


def analyse_run(cfg: DictConfig, path: Path, cache: SVDCache, opts: Options) -> dict[str, int]:
    """Write the missing tables of one run, then its summary; mirror new rows to MLflow as they come."""
    spec, ctx = cfg.spectral, run_context(cfg, path)
    names = target_names(cfg, ctx, opts)
    plain = OmegaConf.to_container(spec, resolve=True)
    check_settings(path, {k: plain[k] for k in SEMANTIC} | {"targets": list(cfg.model.spectral_targets)})
    track = bool(OmegaConf.select(cfg, "tracking.uri"))
    tags = {
        "sweeps.spectral.convention": CONVENTION,
        "sweeps.spectral.k": str(spec.k),
        "sweeps.spectral.method": spec.method,
    }
    written = skipped = 0
    for i, (step, ckpt) in enumerate(ctx.checkpoints):
        todo = [r for r in spec.references if not table_path(path, r, step).is_file()]
        skipped += len(spec.references) - len(todo)
        refs = {r: reference_path(r, ctx, i) for r in todo}
        if not any(refs.values()):
            continue
        new = analyse_checkpoint(path, step, ckpt, refs, names, cache, opts)
        records = mlflow_records(new, spec.log_per_matrix)
        if opts.method != "full" and spec.svd_error_sample > 0 and not (path / "spectral" / "svd_error.csv").is_file():
            records.append(
                {"step": step, **report_svd_error(path, Checkpoint(ckpt), names, opts, spec.svd_error_sample)}
            )
        if track:
            log_mlflow(path, records, tags)
        written += len(new)
        cache.retain([ckpt, *ctx.memo.values()])
    write_summary(path)
    log.info("%s: %d tables written, %d present", path, written, skipped)
    return {"tables_written": written, "tables_skipped": skipped}


def run_stage(cfg: DictConfig) -> dict[str, Any]:
    """Analyse every run ``find_runs`` returns; one SVD cache serves them all."""
    # torch, and scipy's and numpy's own OpenBLAS (the eigh method), follow spectral.threads
    set_threads(cfg.spectral.threads or cfg.trainer.threads, blas=True)
    t0 = time.monotonic()
    opts = options(cfg.spectral, resolve_device(cfg.spectral.device))
    disk = Path(cfg.paths.output_dir) / cfg.study / "spectral_cache" if cfg.spectral.disk_cache else None
    cache = SVDCache(opts, disk)
    totals = {"runs": 0, "tables_written": 0, "tables_skipped": 0}
    for path in find_runs(cfg):
        for k, v in analyse_run(cfg, path, cache, opts).items():
            totals[k] += v
        totals["runs"] += 1
        cache.retain([])
    return {**totals, "decompositions": cache.computed, "seconds": round(time.monotonic() - t0, 3)}
