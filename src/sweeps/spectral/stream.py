"""Streaming spectral comparison of checkpoints, one matrix at a time (PAPER.md section 6).

A comparison takes a reference checkpoint R and a target checkpoint T (Hugging Face safetensors
directories) and, for every target matrix (parameter names matched by the model config's
``spectral_targets`` regexes), computes the configured metrics of ``METRICS`` on the pair
(W_R, W_T) and their top-k decompositions.

Memory. Tensors are read one at a time from memory-mapped safetensors files (``safe_open``),
never two whole checkpoints, and only when needed: a matrix is loaded as stored (bf16, float32)
to be decomposed when its decomposition is not cached, and in float64 only when a configured
metric reads the matrices themselves (``NEEDS``: update_spectrum, update_energy,
residual_outside), then both W_R and W_T of the current name are held. With metrics [angles]
and method eigh on CPU, the largest buffers are one matrix as stored, its float64 Gram matrix
and a 1 MB float64 slab (with more BLAS threads, a slab up to the size of the Gram matrix).
The top-k decompositions (U [m, k], S [k], V [n, k], float64) live in an ``SVDCache``: each
checkpoint is decomposed once per process (a reference is shared by every target; a target is
reused by the next reference and as the "previous" reference of the next checkpoint, unless
``compare(keep_target=False)``), fixed references can also be persisted on disk as safetensors,
and the stage evicts checkpoints it no longer needs. LoRA runs need nothing special: their
checkpoints are saved with the adapters merged (``sweeps.models.checkpoint``), so the analysis
sees the merged weights.

Decompositions (``METHODS``) of a matrix of any float dtype, computed and returned in float64,
on the GPU when one is present:
- ``full``: LAPACK thin SVD, truncated to k (exact; cost O(m n min(m, n))).
- ``eigh``: top-k eigenpairs of the smaller Gram matrix (W Wᵀ or WᵀW), with the other side as
  W V / σ. Exact up to rounding (the Gram squares the condition number, which in float64 costs
  nothing measurable for σ_k ≫ 1e-8 σ_1; a numerically rank-deficient top-k falls back to
  ``full``) and several times cheaper than the SVD, since only k eigenvectors are formed. On CPU
  the Gram matrix is accumulated by BLAS dsyrk from float64 slabs of W (a bf16/float32 W is never
  copied whole to float64) and the top-k eigensolver is LAPACK dsytrd + dsterf + dstein +
  dormqr (``_top_eigh``), with ``scipy.linalg.eigh(subset_by_index)`` as the fallback.
- ``randomized``: Halko–Martinsson–Tropp subspace iteration (Gaussian start, ``oversample``
  extra columns, ``n_iter`` QR-stabilised power steps). Its accuracy depends on the spectral gap
  at k, which is small in trained weights; ``svd_error_report`` measures it against ``full``.

k must satisfy k <= n/2 on each side (``check_k``: for U n = rows, for V n = columns), since two
k-subspaces of R^n share 2k - n dimensions; ``clip_k`` lowers k per matrix instead of failing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from .metrics import (
    best_match_alignment,
    check_k,
    principal_angles,
    residual_outside,
    subspace_distances,
    sv_drift,
    update_energy,
)

Decomp = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # U [m, k], S [k], V [n, k]


@dataclass(frozen=True)
class Options:
    """How pairs are decomposed and compared (the ``spectral`` config node, minus the stage keys)."""

    k: int = 16
    method: str = "eigh"
    clip_k: bool = False
    oversample: int = 10
    n_iter: int = 4
    seed: int = 0
    update_top: int = 4
    metrics: tuple[str, ...] = (
        "sv_drift",
        "angles",
        "best_match",
        "update_spectrum",
        "update_energy",
        "residual_outside",
    )
    device: str = "cpu"


# --- reading checkpoints ------------------------------------------------------------------------
class Checkpoint:
    """Memory-mapped view of a checkpoint's safetensors files (one file or HF shards)."""

    def __init__(self, path: str | Path):
        from safetensors import safe_open

        self.path = Path(path)
        files = sorted(self.path.glob("*.safetensors")) if self.path.is_dir() else [self.path]
        if not files or not files[0].is_file():
            raise FileNotFoundError(f"checkpoint {self.path} has no *.safetensors weights")
        self.files: dict[str, Path] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as fh:
                    for name in fh.keys():
                        self.files[name] = f
                        self.shapes[name] = tuple(fh.get_slice(name).get_shape())
            except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
                raise ValueError(f"cannot read safetensors file {f}: {err}") from None

    def names(self) -> list[str]:
        return list(self.files)

    def load(self, name: str, device: str = "cpu", dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
        """One tensor on ``device`` as ``dtype`` (None: as stored); the rest of the file stays on disk."""
        from safetensors import safe_open

        with safe_open(str(self.files[name]), framework="pt") as fh:
            W = fh.get_tensor(name)
        return W.to(device=device, dtype=dtype or W.dtype)

    def where(self, name: str) -> Path:
        return self.files[name]


def select_targets(names: Iterable[str], regexes: Iterable[str], where: str | Path = "the checkpoint") -> list[str]:
    """2-D parameter names matching any regex (``re.search``), in file order.

    A regex that matches nothing is a one-line ValueError naming it and a few parameter names.
    """
    names = list(names)
    chosen: list[str] = []
    for rx in regexes:
        hits = [n for n in names if re.search(rx, n)]
        if not hits:
            raise ValueError(
                f"spectral target regex {rx!r} matches no parameter of {where} (it has e.g. {', '.join(names[:4])})"
            )
        chosen += [h for h in hits if h not in chosen]
    return [n for n in names if n in chosen]


def layer_and_matrix(name: str) -> tuple[int, str]:
    """("model.layers.3.self_attn.q_proj.weight") -> (3, "q_proj"); layer -1 when there is none."""
    m = re.search(r"layers?\.(\d+)\.", name)
    parts = name.split(".")
    kind = parts[-2] if parts[-1] in ("weight", "bias") and len(parts) > 1 else parts[-1]
    return (int(m.group(1)) if m else -1), kind


def check_same_shapes(ref: Checkpoint, tgt: Checkpoint, names: Iterable[str]) -> None:
    """One-line ValueError naming both files and the tensor when the checkpoints disagree."""
    for name in names:
        if name not in tgt.shapes:
            raise ValueError(f"tensor {name} is in {ref.where(name)} but not in checkpoint {tgt.path}")
        if ref.shapes[name] != tgt.shapes[name]:
            raise ValueError(
                f"checkpoints differ in shape: {name} is {list(ref.shapes[name])} in "
                f"{ref.where(name)} but {list(tgt.shapes[name])} in {tgt.where(name)}"
            )


def resolve_device(spec: str) -> str:
    """``auto`` -> cuda when available, else cpu; anything else is passed through."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def effective_k(shape: tuple[int, ...], opts: Options) -> int:
    """k for a matrix of ``shape``: guarded by check_k on both sides, or clipped to min(m, n)//2."""
    m, n = shape
    if opts.clip_k:
        return max(1, min(opts.k, m // 2, n // 2))
    check_k(opts.k, m)  # U lives in R^m
    check_k(opts.k, n)  # V lives in R^n
    return opts.k


# --- decompositions -----------------------------------------------------------------------------
def subspace_iteration(W: torch.Tensor, start: torch.Tensor, n_iter: int, k: int) -> tuple[Decomp, torch.Tensor]:
    """Top-k triplets of W from the block power method started at ``start`` [n, l], l >= k.

    Q spans W·start; each step alternates QR-orthonormalised products with Wᵀ and W, which
    amplifies the top singular directions by (σ_i / σ_l+1)² per step; a Rayleigh–Ritz step (SVD
    of the small Qᵀ W) gives the triplets. Returns ((U_k, S_k, V_k), V_l) where V_l [n, l] can
    warm-start the next call on a nearby matrix.
    """
    Q = torch.linalg.qr(W @ start).Q  # [m, l]
    for _ in range(n_iter):
        Z = torch.linalg.qr(W.T @ Q).Q  # [n, l]
        Q = torch.linalg.qr(W @ Z).Q  # [m, l]
    Ub, S, Vh = torch.linalg.svd(Q.T @ W, full_matrices=False)  # [l, l], [l], [l, n]
    return ((Q @ Ub)[:, :k], S[:k], Vh[:k].T), Vh.T


def _svd_full(W: torch.Tensor, k: int, opts: Options) -> Decomp:
    """Thin SVD truncated to k. On CPU scipy's LAPACK gesdd of the tall orientation (a wide W is
    passed as the Fortran view of Wᵀ, no copy): torch's SVD of a wide 896x4864 float64 matrix
    measured 2.6x slower on this project's CPUs (1.85 s vs 0.70 s, one thread)."""
    if W.device.type != "cpu":
        U, S, Vh = torch.linalg.svd(W.to(torch.float64), full_matrices=False)  # [m, r], [r], [r, n]
        return U[:, :k], S[:k], Vh[:k].T
    import scipy.linalg

    Wn = W.detach().to(torch.float64).contiguous().numpy()  # [m, n]
    wide = Wn.shape[0] < Wn.shape[1]
    U, S, Vh = scipy.linalg.svd(
        Wn.T if wide else Wn, full_matrices=False, check_finite=False
    )  # tall: [M, r], [r], [r, r]
    if wide:  # W = (U S Vh)ᵀ = Vhᵀ S Uᵀ
        U, Vh = Vh.T, U.T
    return (torch.from_numpy(U[:, :k].copy()), torch.from_numpy(S[:k].copy()), torch.from_numpy(Vh[:k].T.copy()))


@functools.cache
def _blas():
    """threadpoolctl's controller of the BLAS libraries (scipy's and numpy's OpenBLAS)."""
    import scipy.linalg  # noqa: F401  (the controller sees only libraries already loaded)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def blas_threads() -> int:
    """The BLAS thread count in effect (``spectral.threads`` as the stage sets it)."""
    return max((lib.num_threads for lib in _blas().lib_controllers), default=1)


def _one_blas_thread():
    """Context: BLAS limited to one thread (a no-op when it already is).

    For the small-k steps after the tridiagonalisation: with 2 threads on a 2-core machine the
    back-transformation (dormqr, r x k) took 4x longer (6.8 vs 1.6 ms at r = 512; 20.3 vs 4.9 ms
    at r = 896) while dsytrd itself got faster (5.2 -> 4.7, 25.5 -> 17.1 ms).
    """
    import contextlib

    return _blas().limit(limits=1) if blas_threads() > 1 else contextlib.nullcontext()


def _top_eigh(G: torch.Tensor, k: int, overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Largest k eigenpairs (descending) of a symmetric G [r, r]; only its upper triangle is read.

    On CPU only k eigenvectors are formed: Householder tridiagonalisation (LAPACK dsytrd), every
    eigenvalue of the tridiagonal matrix (dsterf, O(r²)), the top k eigenvectors by inverse
    iteration (dstein), and their back-transformation by the Householder reflectors (dormqr, as
    dormtr does). ``scipy.linalg.eigh`` with ``subset_by_index`` (dsyevr) runs the same steps but
    finds the eigenvalues by bisection (dstebz), which at r = 512 costs about as much as the
    reduction itself; it is the fallback. Every result is checked (residual and orthonormality of
    the tridiagonal eigenvectors). With ``overwrite`` the reduction reuses G's memory, and a
    failure after it returns None (the caller falls back to another method).
    """
    r = G.shape[0]
    if G.device.type != "cpu":
        lam, Q = torch.linalg.eigh(G, UPLO="U")  # [r], [r, r] ascending
        return lam[-k:].flip(0), Q[:, -k:].flip(1)
    import numpy as np
    from scipy.linalg import lapack

    ok = r > 2 and G.dtype == torch.float64 and G.is_contiguous()
    touched = False
    if ok:  # lower form: Q = H(1)...H(r-1), reflector i stored below the subdiagonal of column i
        a = G.numpy().T  # [r, r] Fortran-ordered view (no copy): its lower triangle is G's upper one
        lwork = max(r, int(lapack.dsytrd_lwork(r, lower=1)[0]))
        c, d, e, tau, info = lapack.dsytrd(a, lower=1, lwork=lwork, overwrite_a=int(overwrite))
        touched, ok = overwrite, info == 0
    with _one_blas_thread():  # the steps below are small-k work that BLAS threads only slow down
        if ok:
            lam, info = lapack.dsterf(d.copy(), e.copy())  # [r] ascending
            lam = np.ascontiguousarray(lam[r - k :])  # [k] ascending
            ok = info == 0
        if ok:  # one unreduced block as far as dstein is concerned (it handles e_i = 0 itself)
            iblock, isplit = np.ones(r, np.int32), np.zeros(r, np.int32)
            isplit[0] = r
            Z, info = lapack.dstein(d, e, lam, iblock, isplit)  # [r, k]
            TZ = d[:, None] * Z  # [r, k]: T Z with T = tridiag(e, d, e)
            TZ[:-1] += e[:, None] * Z[1:]
            TZ[1:] += e[:, None] * Z[:-1]
            scale = max(float(np.abs(lam).max()), float(np.abs(d).max()), float(np.abs(e).max(initial=0.0)), 1e-300)
            ok = (
                info == 0 and np.abs(TZ - Z * lam).max() <= 1e-10 * scale and np.abs(Z.T @ Z - np.eye(k)).max() <= 1e-10
            )
        if ok:  # Z <- Q Z: rows 1.. of Z by the QR-form reflectors in c[1:, :-1] (what dormtr does),
            # passed without a copy as the Fortran array [r, r-1] that starts one element into c
            # (leading dimension r; dormqr reads only its first r-1 rows, which are c[1:, j])
            refl = c.reshape(-1, order="F")[1 : 1 + r * (r - 1)].reshape(r, r - 1, order="F")
            ok = np.shares_memory(refl, c) and refl.flags.f_contiguous
        if ok:
            Z = np.asfortranarray(Z)
            Z1, _, info = lapack.dormqr("L", "N", refl, tau, Z[1:], lwork=max(1, 64 * k), overwrite_c=1)
            Z[1:] = Z1
            ok = info == 0 and bool(np.isfinite(Z).all())
    if not ok and touched:
        return None
    if not ok:  # anything unexpected (or r <= 2): the library routine
        import scipy.linalg

        Gn = G.to(torch.float64).numpy()
        lam, Z = scipy.linalg.eigh(Gn, subset_by_index=[r - k, r - 1], driver="evr", lower=False, check_finite=False)
    # descending; copies, since torch refuses negative strides (numpy keeps them for k = 1)
    return torch.from_numpy(lam[::-1].copy()), torch.from_numpy(Z[:, ::-1].copy())


BLOCK_ELEMENTS = 1 << 17  # float64 elements (1 MB) of W converted at a time by the eigh method


def slab_elements(r: int, threads: int) -> int:
    """float64 elements per slab for a Gram matrix [r, r]: 1 MB on one thread; with more BLAS
    threads up to the Gram matrix's own size, since threaded BLAS on thin slabs is slow (Gram
    matrix of a 896x4864 float32 W on a 2-core machine: one thread 70 ms; two threads 276 ms in
    1 MB slabs, 72 ms in 8 MB slabs, 52 ms in 32 MB slabs)."""
    return BLOCK_ELEMENTS if threads <= 1 else max(BLOCK_ELEMENTS, r * r)


def _slabs(W: torch.Tensor, tall: bool, elements: int = BLOCK_ELEMENTS):
    """(slice, slab as a float64 numpy array) along W's long side: rows when tall, columns when wide.

    A float64 W is one slab (no copy); other dtypes (float32, bf16 as stored) are converted a
    slab of about ``elements`` at a time, so that a float64 copy of the whole matrix never exists.
    """
    M, r = (W.shape[0], W.shape[1]) if tall else (W.shape[1], W.shape[0])
    step = M if W.dtype == torch.float64 else max(64, elements // max(r, 1))
    for j in range(0, M, step):
        sl = slice(j, min(j + step, M))
        yield sl, (W[sl] if tall else W[:, sl]).detach().to(torch.float64).numpy()


def _gram(W: torch.Tensor) -> torch.Tensor:
    """Gram matrix [r, r] of W's short side (WᵀW when tall, W Wᵀ when wide) in float64.

    On CPU only its upper triangle is filled (what ``_top_eigh`` reads): symmetric rank-B
    updates (BLAS dsyrk, half the flops of a product) from float64 slabs of W, so a float32 or
    bf16 W is never copied whole to float64 (numpy/scipy's OpenBLAS, not torch's BLAS, which is
    several times slower on some CPUs). Elsewhere the full product of the float64 W.
    """
    m, n = W.shape
    tall, r = m > n, min(m, n)
    if W.device.type != "cpu":
        W = W.to(torch.float64)
        return W.T @ W if tall else W @ W.T
    import numpy as np
    from scipy.linalg import blas

    g = np.zeros((r, r), order="F")  # [r, r]; its lower triangle is accumulated (= the C-order upper)
    for _, Wb in _slabs(W, tall, slab_elements(r, blas_threads())):  # Wb [B, r] (tall) or [r, B] (wide), C-ordered
        # Wbᵀ Wb (tall) or Wb Wbᵀ (wide) from the Fortran view Wb.T, without a copy
        g = blas.dsyrk(1.0, Wb.T, trans=0 if tall else 1, beta=1.0, c=g, lower=1, overwrite_c=1)
    return torch.from_numpy(g.T)  # C-ordered view [r, r]


def _svd_eigh(W: torch.Tensor, k: int, opts: Options) -> Decomp:
    """Top-k triplets from the top-k eigenpairs of the Gram matrix of W's short side; the other
    side is W Q / σ (computed per slab on CPU, like the Gram matrix)."""
    m, n = W.shape
    tall = m > n
    if W.device.type != "cpu":
        W = W.to(torch.float64)
    top = _top_eigh(_gram(W), k, overwrite=True)  # ([k], [r, k]) or None (LAPACK failed)
    if top is None:
        return _svd_full(W, k, opts)
    lam, Q = top
    S = lam.clamp_min(0.0).sqrt()  # [k]
    if S[-1] <= 1e-7 * S[0]:  # numerically rank-deficient top-k: W V / σ would be unstable
        return _svd_full(W, k, opts)
    if W.device.type != "cpu":
        other = W @ Q if tall else W.T @ Q  # [m, k] or [n, k]
    else:
        import numpy as np
        from scipy.linalg import blas

        Qn = np.asfortranarray(Q.numpy())  # [r, k]
        other_n = np.empty((max(m, n), k))  # [m, k] or [n, k]
        # scipy's BLAS, like the Gram matrix: numpy's is a second OpenBLAS whose own thread pool
        # competes with scipy's for the same cores when there are several threads
        for sl, Wb in _slabs(W, tall, slab_elements(min(m, n), blas_threads())):
            # Wb [B, r] C-ordered = Fortran [r, B] (Wbᵀ): tall W Q = (Wbᵀ)ᵀ Q; wide Wᵀ Q = Wbᵀ Q (Fortran [B, r])
            other_n[sl] = blas.dgemm(1.0, Wb.T, Qn, trans_a=1) if tall else blas.dgemm(1.0, Wb.T, Qn)
        del Wb
        other = torch.from_numpy(other_n)
    other /= S
    return (other, S, Q) if tall else (Q, S, other)


def _svd_randomized(W: torch.Tensor, k: int, opts: Options) -> Decomp:
    W = W.to(torch.float64)
    m, n = W.shape
    gen = torch.Generator().manual_seed(opts.seed)
    width = min(k + opts.oversample, m, n)
    omega = torch.randn(n, width, generator=gen, dtype=W.dtype).to(W.device)  # [n, l]
    return subspace_iteration(W, omega, opts.n_iter, k)[0]


METHODS: dict[str, Callable[[torch.Tensor, int, Options], Decomp]] = {
    "full": _svd_full,
    "eigh": _svd_eigh,
    "randomized": _svd_randomized,
}


def decompose(W: torch.Tensor, k: int, opts: Options, method: str | None = None) -> Decomp:
    """Top-k (U [m, k], S [k], V [n, k], float64) of W [m, n] (any float dtype) by ``method`` (default: opts.method)."""
    return METHODS[method or opts.method](W, k, opts)


def svd_error_report(W: torch.Tensor, k: int, opts: Options) -> dict[str, float]:
    """Error of opts.method against the full SVD on one matrix (keys as metrics.svd_error)."""
    Uf, Sf, Vf = decompose(W, k, opts, "full")  # [m, k], [k], [n, k]
    Um, Sm, Vm = decompose(W, k, opts)
    nz = Sf > 0  # [k]
    rel = ((Sm[nz] - Sf[nz]).abs() / Sf[nz]).max().item() if nz.any() else 0.0
    l2 = ((Sm - Sf).norm() / Sf.norm()).item() if Sf.norm() > 0 else 0.0
    return {
        "sv_max_rel": rel,
        "sv_rel_l2": l2,
        "u_sin_max": principal_angles(Uf, Um)[-1].sin().item() if k < W.shape[0] else 0.0,
        "v_sin_max": principal_angles(Vf, Vm)[-1].sin().item() if k < W.shape[1] else 0.0,
    }


class SVDCache:
    """Top-k decompositions per (checkpoint, tensor): computed once, optionally kept on disk.

    ``get`` returns the cached triplets or computes them from the memory-mapped tensor.
    ``persist`` writes one checkpoint's triplets to ``disk_dir`` as a safetensors file whose
    name hashes (checkpoint path, k, method, oversample, n_iter); a later process loads them
    instead of decomposing again. ``retain`` evicts every checkpoint not named.
    """

    def __init__(self, opts: Options, disk_dir: str | Path | None = None):
        self.opts = opts
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self.mem: dict[str, dict[str, Decomp]] = {}
        self.dirty: set[str] = set()
        self.computed = 0

    def _file(self, ckpt: Checkpoint) -> Path | None:
        import hashlib

        if self.disk_dir is None:
            return None
        o = self.opts
        key = f"{ckpt.path.resolve()}|k={o.k}|clip={o.clip_k}|{o.method}|{o.oversample}|{o.n_iter}|{o.seed}"
        return self.disk_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.safetensors"

    def _load_disk(self, ckpt: Checkpoint) -> dict[str, Decomp]:
        f = self._file(ckpt)
        if f is None or not f.is_file():
            return {}
        from safetensors.torch import load_file

        flat = load_file(str(f), device=self.opts.device)
        names = {key.rsplit("::", 1)[0] for key in flat}
        return {n: (flat[f"{n}::U"], flat[f"{n}::S"], flat[f"{n}::V"]) for n in names}

    @staticmethod
    def _key(path: str | Path) -> str:
        return str(Path(path).resolve())

    def get(self, ckpt: Checkpoint, name: str, W: torch.Tensor | None = None, store: bool = True) -> Decomp:
        """The cached triplets, or W's (loaded as stored when not given), kept unless ``store=False``."""
        key = self._key(ckpt.path)
        if key not in self.mem:
            from_disk = self._load_disk(ckpt)
            if from_disk or store:
                self.mem[key] = from_disk
        entry = self.mem.get(key, {})
        if name in entry:
            return entry[name]
        W = ckpt.load(name, self.opts.device, dtype=None) if W is None else W  # [m, n] as stored
        trip = decompose(W, effective_k(tuple(W.shape), self.opts), self.opts)
        self.computed += 1
        if store:
            self.mem[key][name] = trip
            self.dirty.add(key)
        return trip

    def persist(self, ckpt: Checkpoint) -> None:
        key, f = self._key(ckpt.path), self._file(ckpt)
        if f is None or key not in self.dirty:
            return
        from safetensors.torch import save_file

        flat = {
            f"{n}::{part}": t.contiguous().cpu() for n, trip in self.mem[key].items() for part, t in zip("USV", trip)
        }
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.tmp")  # temp file, then rename: readers never see half a file
        save_file(flat, str(tmp), metadata={"checkpoint": key})
        tmp.replace(f)
        self.dirty.discard(key)

    def retain(self, keep: Iterable[str | Path]) -> None:
        keep = {self._key(p) for p in keep}
        for key in [k for k in self.mem if k not in keep]:
            del self.mem[key]
            self.dirty.discard(key)


# --- metrics on one pair ------------------------------------------------------------------------
@dataclass
class Pair:
    """One matrix in a reference and a target checkpoint, with their top-k decompositions.

    W_ref / W_tgt (float64) are loaded only when a configured metric needs them (``NEEDS``).
    """

    W_ref: torch.Tensor | None  # [m, n]
    W_tgt: torch.Tensor | None  # [m, n]
    ref: Decomp
    tgt: Decomp
    opts: Options

    @property
    def k(self) -> int:
        return self.ref[1].numel()

    @cached_property
    def dW(self) -> torch.Tensor:
        return self.W_tgt - self.W_ref  # [m, n]


def _m_sv_drift(p: Pair) -> dict[str, float]:
    d = sv_drift(p.ref[1], p.tgt[1])
    return {"sv_drift": d["mean_abs_rel"], "sv_delta_mean": d["mean_abs_delta"]}


def _m_angles(p: Pair) -> dict[str, float]:
    """Principal angles of the top-k U and V subspaces, their distances and the random baseline."""
    out: dict[str, float] = {}
    for side, A, B in (("u", p.ref[0], p.tgt[0]), ("v", p.ref[2], p.tgt[2])):
        theta = principal_angles(A, B)  # [k] ascending
        d = subspace_distances(theta, p.k, A.shape[0])
        out.update(
            {
                f"{side}_angle_mean": d["mean_angle"],
                f"{side}_angle_max": theta[-1].item(),
                f"{side}_geodesic": d["geodesic"],
                f"{side}_chordal_normalised": d["chordal_normalised"],
                f"{side}_projection_frobenius": d["projection_frobenius"],
                f"{side}_chordal_random": d["chordal_normalised_random"],
            }
        )
    out["angle_mean"] = 0.5 * (out["u_angle_mean"] + out["v_angle_mean"])
    return out


def _m_best_match(p: Pair) -> dict[str, float]:
    return {
        "u_best_match": best_match_alignment(p.ref[0], p.tgt[0]),
        "v_best_match": best_match_alignment(p.ref[2], p.tgt[2]),
    }


def _m_update_spectrum(p: Pair) -> dict[str, float]:
    """Top singular values of ΔW (same method as the weights), its norm and relative size."""
    top = min(p.opts.update_top, *p.dW.shape)
    norm = p.dW.norm().item()
    sv = decompose(p.dW, top, p.opts)[1] if norm > 0 else torch.zeros(top, dtype=torch.float64)  # [top]
    out = {f"update_sv{i + 1}": s for i, s in enumerate(sv.tolist())}
    return {**out, "update_norm": norm, "update_rel": norm / max(p.W_ref.norm().item(), 1e-300)}


def _m_update_energy(p: Pair) -> dict[str, float]:
    e = update_energy(p.W_ref, p.W_tgt, p.ref[0], p.ref[2])
    return {"E_diag": e["E_diag"], "E_rot": e["E_rot"], "E_outside": e["E_outside"]}


def _m_residual_outside(p: Pair) -> dict[str, float]:
    return {"residual_outside": residual_outside(p.W_tgt, p.ref[0], p.ref[2], p.ref[1])["residual"]}


# the matrices each metric reads besides the decompositions (the others need no matrix at all)
NEEDS: dict[str, tuple[str, ...]] = {
    "update_spectrum": ("ref", "tgt"),
    "update_energy": ("ref", "tgt"),
    "residual_outside": ("tgt",),
}

METRICS: dict[str, Callable[[Pair], dict[str, float]]] = {
    "sv_drift": _m_sv_drift,
    "angles": _m_angles,
    "best_match": _m_best_match,
    "update_spectrum": _m_update_spectrum,
    "update_energy": _m_update_energy,
    "residual_outside": _m_residual_outside,
}


def compare(
    ref: Checkpoint, tgt: Checkpoint, names: list[str], cache: SVDCache, opts: Options, keep_target: bool = True
) -> list[dict]:
    """One row per target matrix: layer, matrix type, shape, k and every configured metric.

    Streams: each iteration takes both decompositions of one name from the cache (a miss loads
    that matrix as stored and decomposes it) and loads W_ref / W_tgt in float64 only when a
    configured metric needs them (``NEEDS``; with metrics [angles] no matrix is loaded once the
    reference is cached); they are dropped before the next name. The target's decompositions
    stay in the cache (for the next reference, or as the next checkpoint's "previous") unless
    ``keep_target=False``.
    """
    unknown = [m for m in opts.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown spectral metric(s) {unknown}: known are {sorted(METRICS)}")
    check_same_shapes(ref, tgt, names)
    rows = []
    needs = {side for metric in opts.metrics for side in NEEDS.get(metric, ())}
    for name in names:
        W_ref = ref.load(name, opts.device) if "ref" in needs else None  # [m, n] float64
        W_tgt = tgt.load(name, opts.device) if "tgt" in needs else None
        pair = Pair(W_ref, W_tgt, cache.get(ref, name, W_ref), cache.get(tgt, name, W_tgt, store=keep_target), opts)
        layer, matrix = layer_and_matrix(name)
        m, n = ref.shapes[name]
        row = {"name": name, "layer": layer, "matrix": matrix, "m": m, "n": n, "k": pair.k}
        for metric in opts.metrics:
            row.update(METRICS[metric](pair))
        rows.append(row)
        del W_ref, W_tgt, pair
    return rows
