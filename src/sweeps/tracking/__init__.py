"""Experiment tracking: MLflow mirrors each run directory; a null tracker has the same methods."""
