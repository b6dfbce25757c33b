"""Secrets never reach run directories, MLflow or Hydra's saved job files.

Credentials belong in the environment (``HF_TOKEN``, ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, ``AWS_SECRET_ACCESS_KEY``): the libraries read them there. Yet a
config can still pull one in (``${oc.env:HF_TOKEN}``), a URI can carry a password
(``https://alice:pw@host``) and a command line can name one. Everything sweeps writes from a
config goes through :func:`redact` first:

- the value of any key whose name looks like a secret (token, password, secret, api key,
  credential) becomes ``***``;
- the password of a URL's ``user:password@`` becomes ``***``;
- any occurrence of the value of a secret-named environment variable (8 characters or more)
  becomes ``***``, wherever it appears.

It applies to the run's ``config.yaml``, the MLflow params and config artifact, and (the Hydra
callback :class:`RedactHydraFiles`) Hydra's ``.hydra/{config,hydra,overrides}.yaml`` of each job.
The run signature is a hash of the unredacted config, so two configs differing only in a secret
stay two runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

MASK = "***"
_SECRET_WORDS = {"token", "password", "passwd", "secret", "credential", "credentials", "apikey"}
_NOT_SECRET = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "id", "ids", "special"}  # tokenizer fields
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@]+:)([^\s@/]+)(@)")
_KEY_VALUE = re.compile(r"([\w.\-]+)(['\"]?[ \t]*[=:][ \t]*['\"]?)([^\s,\]}'\"]+)")


def is_secret_name(name: str) -> bool:
    """``hf_token``, ``MLFLOW_TRACKING_PASSWORD``, ``api_key``, ``client_secret``: yes;
    ``max_new_tokens``, ``pad_token_id``, ``tokenizer``: no."""
    words = [w for w in re.split(r"[^a-z0-9]+", str(name).lower()) if w]
    joined = {a + b for a, b in zip(words, words[1:])}  # api_key -> apikey
    return bool((_SECRET_WORDS & (set(words) | joined)) and not _NOT_SECRET & set(words))


def env_secrets() -> list[str]:
    """The values of this process's secret-named environment variables, longest first."""
    values = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with URL passwords, ``secret_key=value`` pairs and secret values masked."""
    for value in env_secrets() if secrets is None else secrets:
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _KEY_VALUE.sub(
        lambda m: (
            m.group(1) + m.group(2) + MASK
            if is_secret_name(m.group(1).rsplit(".", 1)[-1]) and m.group(3) != MASK
            else m.group(0)
        ),
        text,
    )


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a config container (dicts, lists, scalars) with secrets masked."""
    secrets = env_secrets() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: (MASK if is_secret_name(k) and v not in (None, "") else redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj


def config_yaml(cfg: Any) -> str:
    """The resolved config as YAML, redacted: what a run directory and MLflow keep."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(redact(OmegaConf.to_container(cfg, resolve=True))))


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra-core < 1.2
    _HydraCallback = object


class RedactHydraFiles(_HydraCallback):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml): after Hydra saved a job's
    ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml``, rewrite them redacted."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        hydra = config.hydra
        if not hydra.get("output_subdir"):
            return
        folder = Path(hydra.runtime.output_dir) / hydra.output_subdir
        secrets = env_secrets()
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            path = folder / name
            if path.is_file():
                text = path.read_text()
                clean = redact_text(text, secrets)
                if clean != text:
                    from sweeps.runs import atomic_write_text

                    atomic_write_text(path, clean)
