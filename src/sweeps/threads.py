"""Thread setup shared by every job: torch's intra-op pool, one inter-op thread, and optionally
the BLAS libraries that scipy and numpy bring (the spectral stage's LAPACK/BLAS kernels)."""

from __future__ import annotations


def set_threads(n: int, blas: bool = False) -> None:
    """torch uses ``n`` threads (and one inter-op thread, when not set yet in this process);
    with ``blas``, scipy's and numpy's own OpenBLAS too (threadpoolctl)."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    if blas:
        import scipy.linalg  # noqa: F401  (threadpoolctl limits only the libraries already loaded)
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
