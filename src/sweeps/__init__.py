"""sweeps: a framework for studying what post-training does to language models."""

__version__ = "0.1.0"

from pathlib import Path as _Path

# Hydra config root: the repository's conf/ (the package is installed in editable mode).
CONF_DIR = str(_Path(__file__).resolve().parents[2] / "conf")
