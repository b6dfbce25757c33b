"""The one error type of config validation, and its one-line check."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that composes but cannot work; the message names the key."""


def check(cond: bool, msg: str) -> None:
    """Raise ``ConfigError(msg)`` unless ``cond``; ``msg`` is one line naming the key and the fix."""
    if not cond:
        raise ConfigError(msg)


_check = check  # the name the entry points import
