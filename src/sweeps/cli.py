"""What every entry point does with bad input: one line on stderr, exit status 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any


class Preempted(RuntimeError):
    """A job stopped on SIGTERM with a resume state saved (:mod:`sweeps.modules.preemption`):
    the entry point exits with 128 + SIGTERM, and re-running the command resumes it."""

    exit_code = 143


# Errors that mean "the input is wrong" (config, paths, checkpoints, numerics), not a bug.
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


def hydra_error_line(err: BaseException) -> str:
    """One line for a Hydra composition error (an unknown key or group option, a wrong type, an
    override that does not parse) and its OmegaConf cause, which names the key."""
    import dataclasses
    import difflib

    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    head, *hints = one_line(err).split("; ")  # e.g. "Could not override 'x'." + "To append ... use +x=1"
    head = head.rstrip(".")
    override = getattr(err, "override", None)
    if override:
        head = f"cannot parse the override {override!r}: {head}"
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException):
        head += f": {one_line(cause)}"
        parent = getattr(cause, "parent_node", None)
        if (
            isinstance(cause, ConfigKeyError | ConfigAttributeError)
            and isinstance(parent, DictConfig)
            and dataclasses.is_dataclass(OmegaConf.get_type(parent))
        ):
            # a schema'd node: "+key=value" would be refused too (schema.check_keys); name the near miss
            keys = [str(k) for k in parent.keys()]
            close = difflib.get_close_matches(str(cause.key), keys, n=1)
            where = str(cause.full_key).rpartition(".")[0]
            hints = [
                f"did you mean {where + '.' if where else ''}{close[0]}?" if close else f"the keys there are {keys}"
            ]
    return "; ".join([head, *hints])


def _compact_hydra_errors() -> None:
    """Hydra prints a composition error over several lines (the OmegaConf cause, its types, a hint
    about HYDRA_FULL_ERROR); make it ``error: <one line>`` and exit 1 like every other bad input.
    Other exceptions, and every error under HYDRA_FULL_ERROR=1, keep Hydra's own report."""
    import os

    try:  # a private Hydra function: without it, Hydra's own report stays
        from hydra._internal import utils as hydra_utils
        from hydra.errors import CompactHydraException

        original = hydra_utils.run_and_report
    except (ImportError, AttributeError):  # pragma: no cover - another Hydra version
        return
    if getattr(original, "sweeps_compact", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def compact() -> Any:
            try:
                return func()
            except CompactHydraException as err:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                raise SystemExit(f"error: {hydra_error_line(err)}") from None

        return original(compact)

    run_and_report.sweeps_compact = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


_compact_hydra_errors()


def one_line_errors(fn: Callable[..., Any], *args: Any, log: logging.Logger | None = None) -> Any:
    """Call ``fn(*args)``; a user error becomes ``SystemExit("error: <message>")``."""
    try:
        return fn(*args)
    except Preempted as err:  # SIGTERM: state saved; 143 tells a scheduler "terminated"
        if log is not None:
            log.warning("%s", err)
        print(f"stopped: {err}", file=sys.stderr)
        raise SystemExit(Preempted.exit_code) from None
    except USER_ERRORS as err:  # ConfigError and CheckpointError are ValueErrors
        if log is not None:
            log.error("%s: %s", type(err).__name__, err)
        raise SystemExit(f"error: {one_line(err)}") from None
