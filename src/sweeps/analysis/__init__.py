"""Analysis of finished runs: checkpoint roles, tidy tables, peaks, recovery windows, bootstrap CIs.

``bootstrap_ci`` is re-exported lazily, so importing ``sweeps.analysis.roles`` stays light.
"""

__all__ = ["bootstrap_ci"]


def __getattr__(name: str):
    if name == "bootstrap_ci":
        from sweeps.analysis.bootstrap import bootstrap_ci

        return bootstrap_ci
    raise AttributeError(f"module 'sweeps.analysis' has no attribute {name!r}")
