"""bench/spectral.py's workers: synthetic checkpoints, the compared pairs, and the naive and
streaming paths a worker process times (see bench/spectral.py). Module level: standard library only."""

from __future__ import annotations

from pathlib import Path

from sweeps.runs import layout

METHODS = ("full", "eigh", "randomized")


# --- synthetic checkpoints -------------------------------------------------------------------------
def make_checkpoints(
    root: Path, shapes: list[tuple[int, int]], K: int, eps: float = 0.01, names: list[str] | None = None
) -> list[Path]:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)

    def rotation(n: int) -> torch.Tensor:
        A = torch.randn(n, n, generator=g, dtype=torch.float64)
        A = A - A.T  # [n, n] skew
        return torch.linalg.matrix_exp(eps * A / torch.linalg.matrix_norm(A, 2))  # [n, n] orthogonal

    mats = {}
    for i, (m, n) in enumerate(shapes):
        name = (
            names[i]
            if names
            else (f"model.layers.{i}.self_attn.q_proj.weight" if m == n else f"model.layers.{i}.mlp.down_proj.weight")
        )
        r = min(m, n)
        U = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64)).Q  # [m, r]
        V = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64)).Q  # [n, r]
        s = torch.arange(1, r + 1, dtype=torch.float64) ** -0.5  # [r]
        mats[name] = (U * s @ V.T, rotation(m), rotation(n))  # W_0 [m, n], R_L [m, m], R_R [n, n]
    paths = []
    current = {name: W for name, (W, _, _) in mats.items()}
    for t in range(K):
        path = root / layout.ckpt_name(t)  # a run's checkpoint folder name
        path.mkdir(parents=True)
        save_file(
            {nm: (W * (1 + 0.01 * t)).float().contiguous() for nm, W in current.items()},
            str(path / "model.safetensors"),
        )
        current = {nm: mats[nm][1] @ W @ mats[nm][2].T for nm, W in current.items()}
        paths.append(path)
    return paths


# --- workers (one fresh process each) --------------------------------------------------------------
def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


OOD_PEAK = 2  # the checkpoint playing the SFT run's OOD-peak role in the stage workload (an early one)


def pairs(K: int, workload: str) -> list[tuple[int, str, int]]:
    """(target t, reference name, reference checkpoint) for targets t = 1..K-1.

    ``one``: checkpoint 0 only (one fixed reference: the worst case for the stream, which then
    decomposes every target once for a single comparison). ``stage``: what ``sweeps-spectral``
    computes with its default ``spectral.references`` [base, ood_peak, previous]: checkpoint 0,
    checkpoint ``OOD_PEAK`` (when it exists) and t - 1 (for t = 1 the same checkpoint as base,
    and for t = OOD_PEAK the target itself, as in the stage, which writes every table).
    """
    refs = {
        "one": lambda t: [("base", 0)],
        "stage": lambda t: [("base", 0)] + ([("ood_peak", OOD_PEAK)] if OOD_PEAK < K else []) + [("previous", t - 1)],
    }
    return [(t, name, r) for t in range(1, K) for name, r in refs[workload](t)]


def work_naive(paths: list[Path], k: int, workload: str = "one") -> dict:
    import numpy as np
    import scipy.linalg as sl
    from safetensors.numpy import load_file

    out = {}
    for t, ref, r in pairs(len(paths), workload):
        A, B = load_file(str(paths[r] / "model.safetensors")), load_file(str(paths[t] / "model.safetensors"))
        for name in A:
            Ua, _, Vha = sl.svd(A[name].astype(np.float64), full_matrices=False)  # [m, r], [r], [r, n]
            Ub, _, Vhb = sl.svd(B[name].astype(np.float64), full_matrices=False)
            tu = sl.subspace_angles(Ua[:, :k], Ub[:, :k])  # [k] descending
            tv = sl.subspace_angles(Vha[:k].T, Vhb[:k].T)
            out[f"{t}/{ref}/{name}"] = [tu.mean(), tu.max(), tv.mean(), tv.max()]
        del A, B
    return out


def work_stream(paths: list[Path], k: int, method: str, workload: str = "one") -> dict:
    """The stage's loop (``sweeps.spectral.stage.analyse_run``) without its file writes: per
    target, ``compare`` against each reference, keeping the target's triplets when another
    reference or the next checkpoint's "previous" needs them, then evict all but the target and
    the fixed references."""
    from sweeps.spectral.cache import SVDCache
    from sweeps.spectral.checkpoints import Checkpoint, select_targets
    from sweeps.spectral.options import Options
    from sweeps.spectral.stage import keeps_target
    from sweeps.spectral.stream import compare

    opts = Options(k=k, method=method, metrics=("angles",))
    cache = SVDCache(opts)
    names = select_targets(Checkpoint(paths[0]).names(), [r"\.weight$"], paths[0])
    todo = pairs(len(paths), workload)
    fixed = sorted({paths[r] for _, ref, r in todo if ref != "previous"})
    out = {}
    for t in range(1, len(paths)):
        tgt, mine = Checkpoint(paths[t]), [p for p in todo if p[0] == t]
        keep = keeps_target({ref: paths[r] for _, ref, r in mine})  # the stage's rule
        for _, ref, r in mine:
            for row in compare(Checkpoint(paths[r]), tgt, names, cache, opts, keep_target=keep):
                out[f"{t}/{ref}/{row['name']}"] = [
                    row["u_angle_mean"],
                    row["u_angle_max"],
                    row["v_angle_mean"],
                    row["v_angle_max"],
                ]
        cache.retain([paths[t], *fixed])
    return out


def warm_up(which: str, paths: list[Path] | None = None, k: int = 4) -> None:
    """Run the worker's routines once before the measurement, so that loading libraries and LAPACK
    code pages is not counted as the method's memory. With ``paths`` the warm-up is the method's
    own work on the first pair (checkpoints 0 and 1, fresh caches, results dropped): BLAS packing
    buffers and code paths of the real sizes are then touched before the high-water mark is reset
    too (one-time costs of the process, the same for every path, not data)."""
    import numpy as np

    if paths is not None:
        (work_naive(paths[:2], k) if which == "naive" else work_stream(paths[:2], k, which)).clear()  # workload one
        return

    if which == "naive":
        import scipy.linalg as sl

        U = sl.svd(np.random.default_rng(0).standard_normal((24, 16)), full_matrices=False)[0]
        sl.subspace_angles(U[:, :4], U[:, 4:8])
        return
    import torch

    from sweeps.spectral.decompositions import decompose
    from sweeps.spectral.metrics import principal_angles
    from sweeps.spectral.options import Options

    U = decompose(torch.randn(24, 16, dtype=torch.float64), 4, Options(k=4), which)[0]  # [24, 4]
    principal_angles(U, U)
