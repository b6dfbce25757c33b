"""Hydra's composition errors (an unknown key or group option, a wrong type, an override that
does not parse) as the one line every entry point prints for bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def hydra_error_line(err: BaseException) -> str:
    """One line for a Hydra composition error (an unknown key or group option, a wrong type, an
    override that does not parse) and its OmegaConf cause, which names the key."""
    import dataclasses
    import difflib

    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    from sweeps.cli import one_line

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


def compact_hydra_errors() -> None:
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
