"""Secrets are masked in everything written from a config (hand-written cases)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sweeps.secrets import config_yaml, is_secret_name, redact, redact_text


@pytest.mark.parametrize(
    "name,secret",
    [
        ("hf_token", True),
        ("HF_TOKEN", True),
        ("MLFLOW_TRACKING_PASSWORD", True),
        ("api_key", True),
        ("WANDB_API_KEY", True),
        ("apikey", True),
        ("client_secret", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("db_passwd", True),
        ("credentials", True),
        ("max_new_tokens", False),
        ("pad_token_id", False),
        ("eos_token", False),
        ("tokenizer", False),
        ("num_tokens", False),
        ("special_tokens", False),
        ("keys", False),
        ("passes", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_text_masks_url_passwords_secret_pairs_and_planted_values():
    text = (
        "- tracking.uri=https://alice:pw123@mlflow.example.com:5000/x\n"
        "model:\n  hub_token: abc123\n  max_new_tokens: 48\n  path: /models/q\nnote: uses hf_Planted000111 here\n"
        "- +db.password='hunter2'\n"
    )
    assert redact_text(text, ["hf_Planted000111"]) == (
        "- tracking.uri=https://alice:***@mlflow.example.com:5000/x\n"
        "model:\n  hub_token: ***\n  max_new_tokens: 48\n  path: /models/q\nnote: uses *** here\n"
        "- +db.password='***'\n"
    )


def test_containers_mask_secret_keys_and_values_but_keep_the_rest(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_plantedvalue42")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # under 8 characters: not treated as a secret
    cfg = {
        "model": {"hub_token": "x", "pad_token_id": 0, "name": "abc"},
        "tracking": {"uri": "http://u:p4ss@h:1", "password": None},
        "paths": ["/data/hf_plantedvalue42/run"],
        "n": 3,
    }
    assert redact(cfg) == {
        "model": {"hub_token": "***", "pad_token_id": 0, "name": "abc"},
        "tracking": {"uri": "http://u:***@h:1", "password": None},
        "paths": ["/data/***/run"],
        "n": 3,
    }


def test_config_yaml_is_the_resolved_config_with_secrets_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_SECRET", "s3cr3t-value-99")
    cfg = OmegaConf.create({"a": "${oc.env:MY_SERVICE_SECRET}", "b": {"steps": 5, "api_key": "k"}})
    assert OmegaConf.create(config_yaml(cfg)) == {"a": "***", "b": {"steps": 5, "api_key": "***"}}
