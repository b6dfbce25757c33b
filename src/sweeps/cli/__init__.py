"""The entry points, one module each (``sweeps-<name>``), and their bad input: one line, exit 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeps.cli.hydra_errors import compact_hydra_errors


class Preempted(RuntimeError):
    """A job stopped on SIGTERM with a resume state saved (:mod:`sweeps.modules.preemption`):
    the entry point exits with 128 + SIGTERM, and re-running the command resumes it."""

    exit_code = 143


# Errors that mean "the input is wrong" (config, paths, checkpoints, numerics), not a bug, which the entry
# points and launchers report in one line. ConfigError, CheckpointError are ValueErrors; FloatingPointError isn't.
USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError, FloatingPointError)
# OmegaConf's own detail lines (the key is in the message or in full_key)
_NOISE = ("reference_type=", "object_type=", "Set the environment variable HYDRA_FULL_ERROR")


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when empty), at most ``limit``
    characters: for one-line errors that quote a library's many-line message."""
    text = (str(err).strip().splitlines() or [""])[0] or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: Any) -> str:
    """A message as one line: blank and OmegaConf type lines dropped, the rest joined with '; ';
    a tab-indented list after a line ending in ':' (Hydra's group options, schemas left out)
    joined with ', '."""
    out: list[str] = []
    listing = False
    for line in str(text).split("Config search path:")[0].splitlines():
        item = line.strip()
        if not item or item.startswith(_NOISE):
            continue
        if listing and line.startswith("\t"):
            if not item.endswith("_schema"):
                out[-1] += f"{',' if not out[-1].endswith(':') else ''} {item}"
            continue
        out.append(item)
        listing = item.endswith(":")
    return "; ".join(out)


def absolute_output_dir(cfg: Any) -> str:
    """Make ``cfg.paths.output_dir`` absolute (``~`` expanded, symlinks resolved) in place and
    return it: every job, launcher and stage then names the same run directories."""
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(cfg.paths.output_dir).expanduser().resolve())
    return cfg.paths.output_dir


def one_line_errors(fn: Callable[..., Any], *args: Any, log: logging.Logger | None = None) -> Any:
    """Call ``fn(*args)``; a user error becomes ``SystemExit("error: <message>")``."""
    try:
        return fn(*args)
    except Preempted as err:  # SIGTERM: state saved; 143 tells a scheduler "terminated"
        if log is not None:
            log.warning("%s", err)
        print(f"stopped: {err}", file=sys.stderr)
        raise SystemExit(Preempted.exit_code) from None
    except USER_ERRORS as err:
        if log is not None:
            log.error("%s: %s", type(err).__name__, err)
        raise SystemExit(f"error: {one_line(err)}") from None


compact_hydra_errors()  # Hydra's composition errors in one line too (sweeps.cli.hydra_errors)
