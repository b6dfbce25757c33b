"""Spectral metrics and decomposition methods built from config, looked up by name.

A metric is ``conf/spectral_metric/<name>.yaml``: ``_target_`` a function of a ``Pair``
(``sweeps.spectral.adapters``) returning ``{column: float}``, ``_partial_: true``, and ``reads``,
the matrices it needs besides the decompositions (``ref`` and/or ``tgt``; they are loaded in
float64 only when a selected metric reads them). A method is ``conf/spectral_method/<name>.yaml``:
``_target_`` a function ``(W, k, opts) -> (U, S, V)`` (``sweeps.spectral.decompositions``) and
``_partial_: true``. ``spectral.metrics`` and ``spectral.method`` select them by file name, so a
new metric is one function plus one YAML file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIDES = ("ref", "tgt")


def _dir(group: str) -> Path:
    from sweeps import CONF_DIR

    return Path(CONF_DIR) / group


def available(group: str) -> list[str]:
    """The names a config group offers: the stems of conf/<group>/*.yaml, sorted."""
    return sorted(p.stem for p in _dir(group).glob("*.yaml"))


def _node(group: str, name: str) -> Any:
    from omegaconf import OmegaConf

    f = _dir(group) / f"{name}.yaml"
    if not f.is_file():
        raise ValueError(f"unknown {group.replace('_', ' ')} {name!r}: no {f}; known are {available(group)}")
    node = OmegaConf.load(f)
    if not str(node.get("_target_", "")).startswith("sweeps.") or node.get("_partial_") is not True:
        raise ValueError(f"{f} must set _target_: sweeps.<module>.<function> and _partial_: true")
    return node


def _build(node: Any) -> Callable[..., Any]:
    from hydra.utils import instantiate

    return instantiate(node)


@dataclass(frozen=True)
class Metric:
    """A spectral metric: the function of a Pair and the matrices it reads (``SIDES``)."""

    name: str
    fn: Callable[[Any], dict[str, float]]
    reads: tuple[str, ...]


@functools.cache
def metric(name: str) -> Metric:
    """The metric conf/spectral_metric/<name>.yaml builds."""
    from omegaconf import OmegaConf

    node = _node("spectral_metric", name)
    reads = tuple(node.get("reads") or ())
    bad = [r for r in reads if r not in SIDES]
    if bad:
        raise ValueError(f"conf/spectral_metric/{name}.yaml: reads has {bad}; use a list of {list(SIDES)}")
    fn = _build(OmegaConf.masked_copy(node, [k for k in node if k != "reads"]))
    return Metric(name, fn, reads)


@functools.cache
def method(name: str) -> Callable[..., Any]:
    """The decomposition conf/spectral_method/<name>.yaml builds: ``(W, k, opts) -> (U, S, V)``."""
    return _build(_node("spectral_method", name))
