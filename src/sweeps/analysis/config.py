"""Schema of the ``analysis:`` node of conf/analyze.yaml, registered in Hydra's ConfigStore.

``sweeps-analyze`` composes the training config (study, paths, tracking) plus this node; the
cross-field checks run in ``__post_init__`` (``schema.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from sweeps.schema import _check, job_schema

METHODS = ("percentile", "BCa", "basic")


@dataclass
class AnalysisConfig:
    confidence: float = 0.95  # two-sided bootstrap confidence level
    n_resamples: int = 9999  # bootstrap resamples (and sign-flip draws when 2^n is larger)
    seed: int = 0  # seeds every resampling: same input + seed = same CIs
    method: str = "percentile"  # percentile | BCa | basic (scipy.stats.bootstrap)
    flat_tolerance: float = 1e-6  # OOD differences at or below this are "flat" (no peak, no loss, no gain)
    stages: list[str] = field(default_factory=list)  # RL stages to analyse; [] = every one found
    select_fraction: float = (
        0.5  # checkpoint selection by rotation: the last checkpoint with rotation <= this x the end's
    )

    def __post_init__(self) -> None:
        _check(0 < self.confidence < 1, f"analysis.confidence must be in (0, 1), got {self.confidence}")
        _check(self.n_resamples >= 99, f"analysis.n_resamples must be >= 99, got {self.n_resamples}")
        _check(self.method in METHODS, f"analysis.method={self.method!r}: use one of {list(METHODS)}")
        _check(self.flat_tolerance >= 0, f"analysis.flat_tolerance must be >= 0, got {self.flat_tolerance}")
        _check(0 < self.select_fraction <= 1, f"analysis.select_fraction must be in (0, 1], got {self.select_fraction}")
        _check("sft" not in self.stages, "analysis.stages lists RL stages only (sft is always analysed)")


AnalyzeJobConfig = job_schema("AnalyzeJobConfig", analysis=(AnalysisConfig, AnalysisConfig))


def register() -> None:
    ConfigStore.instance().store(name="analyze_schema", node=AnalyzeJobConfig)


register()
