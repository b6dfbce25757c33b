"""Shared fixtures: the tiny model, config composition, GPU skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """Compose a config from conf/ exactly as the Hydra entry points do."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import sweeps.analysis.config  # noqa: F401  (registers the entry points' schemas)
    import sweeps.schema  # noqa: F401
    import sweeps.spectral.config  # noqa: F401

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides or [])


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny config, random init, eval mode."""
    import torch
    from omegaconf import OmegaConf

    from sweeps.models.build import build

    torch.set_num_threads(1)
    model, tok = build(OmegaConf.load(CONF / "model" / "tiny.yaml"))
    model.eval()
    return model, tok


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def run_and_kill(cmd: list[str], run: Path, after_step: int, timeout: float = 300) -> None:
    """Start ``cmd`` in its own session; SIGKILL the whole session (agent and ranks included)
    once ``run`` has a resume state and metrics of step ``after_step``."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
        if (run / "resume" / "state.json").exists() and f'"step": {after_step}' in metrics:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
