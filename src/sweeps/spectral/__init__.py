"""Weight-space (spectral) analysis: pure float64 metrics and SVD component-swap interventions.

See PAPER.md section 6. Metric conventions are fixed in `CONVENTION` (log it with
every result); interventions use the component-swap form, never mixed-basis products.
"""

from .decompositions import svd_error, top_k_svd
from .interventions import (
    MODES,
    index_set,
    matched_rotation_angles,
    random_rotation_control,
    swap_components,
)
from .metrics import (
    CONVENTION,
    best_match_alignment,
    check_k,
    principal_angles,
    projection_residual,
    random_orthonormal,
    random_subspace_baseline,
    residual_outside,
    sample_random_subspace_angles,
    subspace_distances,
    sv_drift,
    update_energy,
    update_spectrum,
)

__all__ = [
    "CONVENTION",
    "MODES",
    "best_match_alignment",
    "check_k",
    "index_set",
    "matched_rotation_angles",
    "principal_angles",
    "projection_residual",
    "random_orthonormal",
    "random_rotation_control",
    "random_subspace_baseline",
    "residual_outside",
    "sample_random_subspace_angles",
    "subspace_distances",
    "sv_drift",
    "svd_error",
    "swap_components",
    "top_k_svd",
    "update_energy",
    "update_spectrum",
]
