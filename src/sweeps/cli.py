"""What every entry point does with bad input: one line on stderr, exit status 1."""

from __future__ import annotations

import logging
from typing import Any, Callable

# Errors that mean "the input is wrong" (config, paths, checkpoints, numerics), not a bug.
USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError, FloatingPointError)


def one_line_errors(fn: Callable[..., Any], *args: Any, log: logging.Logger | None = None) -> Any:
    """Call ``fn(*args)``; a user error becomes ``SystemExit("error: <message>")``."""
    try:
        return fn(*args)
    except USER_ERRORS as err:                 # ConfigError and CheckpointError are ValueErrors
        if log is not None:
            log.error("%s: %s", type(err).__name__, err)
        raise SystemExit(f"error: {err}") from None
