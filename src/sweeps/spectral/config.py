"""Schema of the ``spectral:`` node of conf/spectral.yaml, registered in Hydra's ConfigStore.

``sweeps-spectral`` composes the training config (model, task, study, seed, paths) plus this
node; ``method`` names a file of conf/spectral_method/, each of ``metrics`` a file of
conf/spectral_metric/ (``sweeps.spectral.components``), each of ``references`` a key of
``stage.REFERENCES``; all are checked here at validation time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from sweeps.schema import _check, job_schema


@dataclass
class SpectralConfig:
    references: list[str] = field(default_factory=lambda: ["base", "ood_peak", "previous"])
    base_path: str | None = None  # "base" = this checkpoint directory instead of the SFT run's first
    k: int = 16  # top-k subspaces; k <= n/2 on both sides of every matrix
    clip_k: bool = False  # lower k per matrix to min(m, n)//2 instead of failing
    method: str = "eigh"  # full | eigh | randomized
    oversample: int = 10  # randomized only
    n_iter: int = 4  # randomized only: power iterations
    metrics: list[str] = field(
        default_factory=lambda: [
            "sv_drift",
            "angles",
            "best_match",
            "update_spectrum",
            "update_energy",
            "residual_outside",
        ]
    )
    update_top: int = 4  # singular values of ΔW reported
    stages: list[str] = field(default_factory=lambda: ["sft"])
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int | None = None  # CPU threads; null = trainer.threads (1 per process on CPU)
    disk_cache: bool = True  # keep fixed references' decompositions under <study>/spectral_cache
    svd_error_sample: int = 2  # matrices on which method's error vs the full SVD is reported
    log_per_matrix: bool = True  # MLflow keys per layer x matrix (always per layer, per type, overall)

    def __post_init__(self) -> None:
        from sweeps.spectral.components import available
        from sweeps.spectral.stage import REFERENCES

        methods, metrics = available("spectral_method"), available("spectral_metric")
        _check(self.k > 0, f"spectral.k must be > 0, got {self.k}")
        _check(
            self.method in methods,
            f"spectral.method={self.method!r}: use one of {methods} (conf/spectral_method/<name>.yaml)",
        )
        bad = [m for m in self.metrics if m not in metrics]
        _check(
            not bad,
            f"spectral.metrics has unknown metric(s) {bad}: known are {metrics} (conf/spectral_metric/<name>.yaml)",
        )
        bad = [r for r in self.references if r not in REFERENCES]
        _check(not bad, f"spectral.references has unknown reference(s) {bad}: known are {sorted(REFERENCES)}")
        _check(bool(self.references) and bool(self.stages), "spectral.references and spectral.stages must not be empty")
        _check(self.oversample >= 0 and self.n_iter >= 0, "spectral.oversample and spectral.n_iter must be >= 0")
        _check(self.threads is None or self.threads > 0, f"spectral.threads must be > 0 or null, got {self.threads}")
        _check(self.update_top > 0, f"spectral.update_top must be > 0, got {self.update_top}")
        _check(
            self.device in ("auto", "cpu") or self.device.startswith("cuda"),
            f"spectral.device={self.device!r}: use auto, cpu or cuda[:i]",
        )


# inherited fields re-declared MISSING, so the schema never resets what train.yaml + experiment set
SpectralJobConfig = job_schema("SpectralJobConfig", spectral=(SpectralConfig, SpectralConfig))


def register() -> None:
    ConfigStore.instance().store(name="spectral_schema", node=SpectralJobConfig)


register()
