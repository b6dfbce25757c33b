"""Streaming spectral comparison of checkpoints, one matrix at a time (PAPER.md section 6).

A comparison takes a reference checkpoint R and a target checkpoint T (Hugging Face safetensors
directories) and, for every target matrix (parameter names matched by the model config's
``spectral_targets`` regexes), computes the selected metrics (``spectral.metrics``, each built
from ``conf/spectral_metric/<name>.yaml``, see ``components``) on the pair (W_R, W_T) and their
top-k decompositions. The parts: ``checkpoints`` reads the files, ``decompositions`` holds the
only SVD code (method ``spectral.method``), ``cache`` keeps decompositions, ``adapters`` holds
the metrics.

Memory. Tensors are read one at a time from memory-mapped safetensors files, never two whole
checkpoints, and only when needed: a matrix is loaded as stored (bf16, float32) to be
decomposed when its decomposition is not cached, and in float64 only when a selected metric
reads the matrices themselves (its ``reads``: update_spectrum, update_energy,
residual_outside), then both W_R and W_T of the current name are held. With metrics [angles]
and method eigh on CPU, the largest buffers are one matrix as stored, its float64 Gram matrix
and a 1 MB float64 slab (with more BLAS threads, a slab up to the size of the Gram matrix).
The top-k decompositions (U [m, k], S [k], V [n, k], float64) live in an ``SVDCache``: each
checkpoint is decomposed once per process (a reference is shared by every target; a target is
reused by the next reference and as the "previous" reference of the next checkpoint, unless
``compare(keep_target=False)``), fixed references can also be persisted on disk as safetensors,
and the stage evicts checkpoints it no longer needs.

k must satisfy k <= n/2 on each side (``options.effective_k``); ``clip_k`` lowers k per matrix
instead of failing.
"""

from __future__ import annotations

from . import components
from .adapters import Pair
from .cache import SVDCache
from .checkpoints import Checkpoint, check_same_shapes, layer_and_matrix
from .options import Options


def compare(
    ref: Checkpoint, tgt: Checkpoint, names: list[str], cache: SVDCache, opts: Options, keep_target: bool = True
) -> list[dict]:
    """One row per target matrix: layer, matrix type, shape, k and every selected metric.

    Streams: each iteration takes both decompositions of one name from the cache (a miss loads
    that matrix as stored and decomposes it) and loads W_ref / W_tgt in float64 only when a
    selected metric reads them (with metrics [angles] no matrix is loaded once the reference is
    cached); they are dropped before the next name. The target's decompositions stay in the
    cache (for the next reference, or as the next checkpoint's "previous") unless
    ``keep_target=False``.
    """
    metrics = [components.metric(m) for m in opts.metrics]  # an unknown name: one-line ValueError
    check_same_shapes(ref, tgt, names)
    rows = []
    needs = {side for metric in metrics for side in metric.reads}
    for name in names:
        W_ref = ref.load(name, opts.device) if "ref" in needs else None  # [m, n] float64
        W_tgt = tgt.load(name, opts.device) if "tgt" in needs else None
        pair = Pair(W_ref, W_tgt, cache.get(ref, name, W_ref), cache.get(tgt, name, W_tgt, store=keep_target), opts)
        layer, matrix = layer_and_matrix(name)
        m, n = ref.shapes[name]
        row = {"name": name, "layer": layer, "matrix": matrix, "m": m, "n": n, "k": pair.k}
        for metric in metrics:
            row.update(metric.fn(pair))
        rows.append(row)
        del W_ref, W_tgt, pair
    return rows
