"""Checks for config nodes that name a function or class to build (``_target_``, ``_partial_``).

The RL components (``algo.advantage``, ``algo.policy_loss`` and its ``agg``,
``algo.kl_estimator``) and the optimizer (``algo.optimizer``) are such nodes: the config is the
registry, so validation imports the target and checks the node's keys against its parameters,
naming the key on a typo, before any work starts.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from sweeps.schema.errors import ConfigError, check


def check_callable(node: Any, key: str) -> Callable[..., Any]:
    """The callable ``node`` names, after checking that it imports, that it is built partially
    (the stage calls it with its tensors or parameters) and that every other key of the node is
    one of its parameters; nested ``_target_`` nodes (e.g. ``agg``) are checked the same way."""
    check(
        isinstance(node, dict) and bool(node.get("_target_")),
        f"{key} must name a function: set {key}._target_ to its dotted path (e.g. sweeps.rl.losses.token_mean)",
    )
    target = node["_target_"]
    from hydra.utils import get_object

    try:
        fn = get_object(target)
    except Exception:  # noqa: BLE001 - any import failure is the finding
        raise ConfigError(f"{key}._target_={target!r} does not import: fix the dotted path") from None
    check(callable(fn), f"{key}._target_={target!r} is not callable: name a function or a class")
    check(node.get("_partial_") is True, f"{key}._partial_ must be true: the stage calls {target} with its own inputs")
    params = inspect.signature(fn).parameters
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in node.items():
        if str(name).startswith("_"):
            continue
        if not open_kwargs and name not in params:
            close = difflib.get_close_matches(str(name), list(params), n=1)
            fix = f"did you mean {key}.{close[0]}?" if close else f"its parameters are {list(params)}"
            raise ConfigError(f"{key}.{name} is not a parameter of {target}: {fix}")
        if isinstance(value, dict) and "_target_" in value:
            check_callable(value, f"{key}.{name}")
    return fn


def check_range(node: dict[str, Any], key: str, name: str, ok: Callable[[Any], bool], want: str) -> None:
    """``node[name]``, when the node sets it, must satisfy ``ok`` (``want`` says how, e.g. '> 0')."""
    if name in node:
        check(ok(node[name]), f"{key}.{name} must be {want}, got {node[name]}")
