"""The run-directory grammar: the only code that knows how a run's path spells its grid axes.

A study directory holds one directory per run::

    <study>/<stage>/<model>/<task>/<init>/seed=<s>/

- ``stage``: ``sft``, ``pretrain`` or an RL algorithm (``grpo``, ``ppo``, ...);
- ``init``: what the run starts from: ``base`` (SFT), ``scratch`` (pretraining), or for RL the
  SFT checkpoint ``sft-step=NNNNNN`` (:func:`sft_init`); an SFT variant (the rotation
  regulariser on) extends it, ``base+rotreg_block_k16_lam0.1`` (:func:`with_variant`);
- ``seed=<s>``: the seed.

Inside a run: ``ckpt/step=NNNNNN/`` checkpoints (:func:`ckpt_name`, :func:`step_of`,
:func:`checkpoints`), ``spectral/<reference>/step=NNNNNN.csv`` spectral tables, and the files
named below (``DONE``, ``signature``, ``config.yaml``, ``metrics.jsonl``, ...). :func:`format`
and :func:`parse` turn a :class:`RunKey` into its path and back; :func:`runs` enumerates a
study's runs. Everything else asks this module instead of splitting paths.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

SFT = "sft"
BASE = "base"  # SFT's init
SCRATCH = "scratch"  # pretraining's init
SEED_PREFIX = "seed="
STEP_PREFIX = "step="
SFT_INIT_PREFIX = "sft-"
VARIANT_SEP = "+"
# folders of a study directory that hold no runs
NOT_STAGES = ("spectral_cache", "report", "analysis", "evalsets")

# a run's files and folders
CONFIG, SIGNATURE, DONE, FAILED = "config.yaml", "signature", "DONE", "FAILED"
METRICS, CKPT, RESUME, SPECTRAL = "metrics.jsonl", "ckpt", "resume", "spectral"
SPECTRAL_SUMMARY = f"{SPECTRAL}/summary.csv"

_STEP = re.compile(r"step=(\d+)")
_SEED = re.compile(r"seed=(-?\d+)")


class LayoutError(ValueError):
    """A path or name that does not follow the run-directory grammar."""


class RunKey(NamedTuple):
    """A run's grid axes; its directory is ``format(study_dir, key)``."""

    stage: str
    model: str
    task: str
    init: str
    seed: int

    @property
    def init_step(self) -> int | None:
        """The SFT checkpoint an RL run started from (``sft-step=000120`` -> 120); None otherwise."""
        return sft_init_step(self.init)

    @property
    def variant(self) -> str:
        """The SFT variant of the init axis (``base+rotreg_...`` -> ``rotreg_...``; ``""`` if none)."""
        return split_variant(self.init)[1]

    def relative(self) -> str:
        """``<stage>/<model>/<task>/<init>/seed=<s>``: the run's name within its study."""
        return "/".join((self.stage, self.model, self.task, self.init, f"{SEED_PREFIX}{self.seed}"))


def format(study_dir: str | os.PathLike, key: RunKey) -> Path:
    """The run directory of ``key`` in the study directory ``study_dir``."""
    for axis in ("stage", "model", "task", "init"):
        value = getattr(key, axis)
        if not value or "/" in value or value in (".", ".."):
            raise LayoutError(f"run {axis} {value!r} is not a directory name: give a non-empty name without '/'")
    return Path(study_dir) / key.relative()


def run_dir(
    output_dir: str | os.PathLike,
    study: str,
    stage: str,
    model: str,
    task: str,
    init: str,
    seed: int,
    variant: str = "",
) -> Path:
    """``<output_dir>/<study>/<stage>/<model>/<task>/<init[+variant]>/seed=<seed>``."""
    return format(Path(output_dir) / study, RunKey(stage, model, task, with_variant(init, variant), int(seed)))


def parse(path: str | os.PathLike) -> RunKey:
    """The grid axes of a run directory (its last five path components); a path that is not
    ``.../<stage>/<model>/<task>/<init>/seed=<s>`` is a one-line :class:`LayoutError`."""
    parts = Path(path).parts
    seed = _SEED.fullmatch(parts[-1]) if parts else None
    if len(parts) < 5 or seed is None:
        raise LayoutError(f"{path} is not a run directory: expected <study>/<stage>/<model>/<task>/<init>/seed=<N>")
    return RunKey(parts[-5], parts[-4], parts[-3], parts[-2], int(seed.group(1)))


def init_of(path: str | os.PathLike) -> str:
    """The init axis of a run directory; a run copied out of its study's grid (e.g. into a bare
    folder on another machine, for ``sweeps-sync``) is named by the folder above it."""
    try:
        return parse(path).init
    except LayoutError:
        return Path(path).resolve().parent.name


def runs(
    study_dir: str | os.PathLike,
    stage: str = "*",
    model: str = "*",
    task: str = "*",
    init: str = "*",
    seed: int | None = None,
) -> list[tuple[RunKey, Path]]:
    """The run directories of a study (optionally those of one stage, model, task, init or seed)
    as (key, path), by path; folders that do not parse as runs are left out."""
    pattern = f"{stage}/{model}/{task}/{init}/{SEED_PREFIX}{'*' if seed is None else seed}"
    found = []
    for path in sorted(Path(study_dir).glob(pattern)):
        if not path.is_dir():
            continue
        try:
            key = parse(path)
        except LayoutError:
            continue
        if key.stage not in NOT_STAGES:
            found.append((key, path))
    return found


def run_files(study_dir: str | os.PathLike, *names: str) -> list[Path]:
    """Every run's files called ``names`` (``DONE``, ``metrics.jsonl``, ``spectral/summary.csv``)."""
    root = Path(study_dir)
    return [f for name in names for f in root.glob(f"*/*/*/*/{SEED_PREFIX}*/{name}")]


def find_runs_below(root: str | os.PathLike) -> list[Path]:
    """Run directories anywhere under ``root`` (an output dir, a study or one run): those with
    a ``metrics.jsonl`` and a ``config.yaml``."""
    return sorted(p.parent for p in Path(root).rglob(METRICS) if (p.parent / CONFIG).is_file())


# --- the init axis -----------------------------------------------------------------------------
def with_variant(init: str, variant: str) -> str:
    """The init axis of a run with an SFT variant: ``base`` + ``rotreg_block_k16_lam0.1`` ->
    ``base+rotreg_block_k16_lam0.1``; no variant: ``init`` unchanged."""
    return f"{init}{VARIANT_SEP}{variant}" if variant else init


def split_variant(init: str) -> tuple[str, str]:
    """Inverse of :func:`with_variant`: ``(init, variant)``, variant ``""`` when there is none."""
    base, _, variant = init.partition(VARIANT_SEP)
    return base, variant


def sft_init(step: int) -> str:
    """The init axis of an RL run started from SFT checkpoint ``step``: ``sft-step=NNNNNN``."""
    return f"{SFT_INIT_PREFIX}{ckpt_name(step)}"


def sft_init_step(init: str) -> int | None:
    """Inverse of :func:`sft_init`: the SFT step, or None when ``init`` is not an SFT checkpoint."""
    if not init.startswith(SFT_INIT_PREFIX):
        return None
    return maybe_step(init[len(SFT_INIT_PREFIX) :])


def sft_init_ckpt(key: RunKey, sft_run: str | os.PathLike) -> Path | None:
    """The checkpoint directory in ``sft_run`` an RL run ``key`` started from (None: not RL)."""
    step = key.init_step
    return None if step is None else ckpt(sft_run, step)


# --- checkpoints ----------------------------------------------------------------------------------
def ckpt_name(step: int) -> str:
    """A checkpoint's folder name: ``step=NNNNNN``."""
    return f"{STEP_PREFIX}{int(step):06d}"


def step_of(name: str) -> int:
    """Inverse of :func:`ckpt_name` (``step=000120`` or ``step=000120.csv`` -> 120); a name
    that is not one is a one-line :class:`LayoutError`."""
    step = maybe_step(name)
    if step is None:
        raise LayoutError(f"{name!r} is not a checkpoint name: expected step=<N> (e.g. {ckpt_name(120)})")
    return step


def maybe_step(name: str) -> int | None:
    """:func:`step_of`, or None for a name that is not a checkpoint's."""
    m = _STEP.fullmatch(Path(name).stem if name.endswith((".csv", ".ckpt")) else name)
    return int(m.group(1)) if m else None


def ckpt(run: str | os.PathLike, step: int) -> Path:
    """The checkpoint directory of ``step`` in the run directory ``run``."""
    return Path(run) / CKPT / ckpt_name(step)


def scan_steps(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """The ``step=N`` entries of ``folder`` as (step, path), by step."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(maybe_step(p.name), p) for p in folder.glob(f"{STEP_PREFIX}*")]
    return sorted((s, p) for s, p in found if s is not None)


def checkpoints(run: str | os.PathLike) -> list[tuple[int, Path]]:
    """A run's complete checkpoints (renamed into place) as (step, path), by step."""
    return scan_steps(Path(run) / CKPT)


def steps(run: str | os.PathLike) -> list[int]:
    """The steps of a run's checkpoints, ascending."""
    return [s for s, _ in checkpoints(run)]


# --- spectral tables ------------------------------------------------------------------------------
def spectral_table(run: str | os.PathLike, reference: str, step: int) -> Path:
    """``<run>/spectral/<reference>/step=NNNNNN.csv``."""
    return Path(run) / SPECTRAL / reference / f"{ckpt_name(step)}.csv"


def spectral_tables(run: str | os.PathLike) -> list[tuple[str, int, Path]]:
    """A run's spectral tables as (reference, step, path), by path."""
    out = []
    for f in sorted((Path(run) / SPECTRAL).glob(f"*/{STEP_PREFIX}*.csv")):
        step = maybe_step(f.name)
        if step is not None:
            out.append((f.parent.name, step, f))
    return out
