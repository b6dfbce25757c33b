"""BLAS/LAPACK kernels of the ``eigh`` decomposition on CPU: the Gram matrix in slabs and a top-k
symmetric eigensolver, with the BLAS thread count they run under.

The Gram matrix of W's short side is accumulated by BLAS dsyrk from float64 slabs of W (a bf16
or float32 W is never copied whole to float64), and its top k eigenpairs come from LAPACK dsytrd
+ dsterf + dstein + dormqr (``top_eigh``), with ``scipy.linalg.eigh(subset_by_index)`` as the
fallback. On other devices both are plain torch calls.
"""

from __future__ import annotations

import contextlib
import functools

import torch


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


def other_side(W: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """W Q [m, k] when W [m, n] is tall, Wᵀ Q [n, k] when wide (Q [min(m, n), k]), in float64;
    on CPU per slab of W with scipy's BLAS, like the Gram matrix."""
    m, n = W.shape
    tall = m > n
    if W.device.type != "cpu":
        return W @ Q if tall else W.T @ Q  # [m, k] or [n, k]
    import numpy as np
    from scipy.linalg import blas

    k = Q.shape[1]
    Qn = np.asfortranarray(Q.numpy())  # [r, k]
    out = np.empty((max(m, n), k))  # [m, k] or [n, k]
    # scipy's BLAS, like the Gram matrix: numpy's is a second OpenBLAS whose own thread pool
    # competes with scipy's for the same cores when there are several threads
    for sl, Wb in _slabs(W, tall, slab_elements(min(m, n), blas_threads())):
        # Wb [B, r] C-ordered = Fortran [r, B] (Wbᵀ): tall W Q = (Wbᵀ)ᵀ Q; wide Wᵀ Q = Wbᵀ Q (Fortran [B, r])
        out[sl] = blas.dgemm(1.0, Wb.T, Qn, trans_a=1) if tall else blas.dgemm(1.0, Wb.T, Qn)
    del Wb
    return torch.from_numpy(out)
