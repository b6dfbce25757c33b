"""Runs: where a run directory is and what its path says (:mod:`.layout`, the only code that
knows the grammar) and what a run directory holds over its life (:mod:`.run`)."""

from sweeps.runs import layout
from sweeps.runs.layout import VARIANT_SEP, RunKey, ckpt_name, run_dir, split_variant, with_variant
from sweeps.runs.run import (
    DONE_FIX,
    NON_SEMANTIC,
    NON_SEMANTIC_FIELDS,
    STATE_FIX,
    MetricsWriter,
    Run,
    RunConflictError,
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    iter_metrics,
    latest_values,
    read_json,
    rotation_variant,
    signature,
)

__all__ = [
    "DONE_FIX",
    "NON_SEMANTIC",
    "NON_SEMANTIC_FIELDS",
    "STATE_FIX",
    "VARIANT_SEP",
    "MetricsWriter",
    "Run",
    "RunConflictError",
    "RunKey",
    "atomic_dir",
    "atomic_write_json",
    "atomic_write_text",
    "ckpt_name",
    "iter_metrics",
    "latest_values",
    "layout",
    "read_json",
    "rotation_variant",
    "run_dir",
    "signature",
    "split_variant",
    "with_variant",
]
