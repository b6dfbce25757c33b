"""The spectral stage on a synthetic run directory (tables, summary, skips, refusals, an RL run's
"previous") and a corrupted checkpoint: what the stage reads and writes. The known answers of the
streaming comparison are in ``test_spectral_stream.py``, whose checkpoint helpers these share."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from sweeps.spectral.stream import Checkpoint
from tests.unit.test_spectral_stream import one_line, write_ckpt

# --- the stage on a synthetic run directory -------------------------------------------------------
TINY_TARGETS = [f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(2) for p in "qkv"] + [
    f"model.layers.{i}.mlp.down_proj.weight" for i in range(2)
]


@pytest.fixture
def study(tmp_path):
    """An SFT run with checkpoints 0, 10, 20 (step 10 = OOD peak) of small matrices, DONE."""
    run = tmp_path / "default" / "sft" / "tiny" / "general_points_compact" / "base" / "seed=0"
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(16, 48 if "down" in n else 16, generator=g) for n in TINY_TARGETS}
    weights["model.embed_tokens.weight"] = torch.randn(10, 16, generator=g)
    for step in (0, 10, 20):
        write_ckpt(run / "ckpt" / f"step={step:06d}", weights)
        weights = {n: w + 0.05 * torch.randn(w.shape, generator=g) for n, w in weights.items()}
    recs = [{"step": s, "eval/ood/success": v} for s, v in ((0, 0.1), (10, 0.5), (20, 0.3))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "DONE").write_text("{}")
    return tmp_path, run


def spectral_cfg(out: Path, *overrides: str):
    import sweeps.spectral.config  # noqa: F401  (registers spectral_schema)
    from tests.conftest import compose

    return compose(
        [
            "model=tiny",
            "task=general_points_compact",
            "tracking=none",
            f"paths.output_dir={out}",
            "spectral.k=4",
            *overrides,
        ],
        config_name="spectral",
    )


def test_stage_writes_tables_summary_and_skips(study):
    from sweeps.cli.spectral import spectral

    out, run = study
    res = spectral(spectral_cfg(out))
    tables = sorted(str(p.relative_to(run / "spectral")) for p in (run / "spectral").glob("*/*.csv"))
    assert tables == [
        "base/step=000000.csv",
        "base/step=000010.csv",
        "base/step=000020.csv",
        "ood_peak/step=000000.csv",
        "ood_peak/step=000010.csv",
        "ood_peak/step=000020.csv",
        "previous/step=000010.csv",
        "previous/step=000020.csv",
    ]
    assert res["tables_written"] == 8
    with open(run / "spectral" / "ood_peak" / "step=000010.csv") as fh:  # the peak against itself
        rows = list(csv.DictReader(fh))
    assert sorted(r["name"] for r in rows) == sorted(TINY_TARGETS)  # the embedding is not a target
    assert all(float(r["u_angle_max"]) < 1e-12 and float(r["sv_drift"]) == 0.0 for r in rows)
    with open(run / "spectral" / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    groups = {r["group"] for r in summary}
    assert groups == {"all", "layer0", "layer1", "q_proj", "k_proj", "v_proj", "down_proj"}
    assert len(summary) == 8 * len(groups)
    moved = [r for r in summary if r["reference"] == "base" and r["step"] == "20" and r["group"] == "all"][0]
    assert 0 < float(moved["angle_mean"]) < math.pi / 2
    assert (run / "spectral" / "svd_error.csv").is_file()
    again = spectral(spectral_cfg(out))
    assert again["tables_written"] == 0 and again["decompositions"] == 0 and again["tables_skipped"] == 8


def test_stage_refuses_tables_of_other_settings(study):
    from sweeps.cli.spectral import spectral
    from sweeps.schema import ConfigError

    out, run = study
    spectral(spectral_cfg(out, "spectral.references=[base]"))
    with pytest.raises(ConfigError, match="k=4 there, 5 now"):
        spectral(spectral_cfg(out, "spectral.k=5"))


def test_stage_without_runs_and_bad_config_are_one_line(tmp_path):
    from sweeps.cli.spectral import spectral
    from sweeps.schema import ConfigError

    with pytest.raises(FileNotFoundError) as err:
        spectral(spectral_cfg(tmp_path))
    assert "sweeps-train" in one_line(err)
    for override, message in (
        ("spectral.method=qr", "spectral.method"),
        ("spectral.metrics=[angles,nope]", "nope"),
        ("spectral.references=[best]", "spectral.references"),
    ):
        with pytest.raises(ConfigError, match=message):
            spectral(spectral_cfg(tmp_path, override))


def test_rl_run_previous_of_its_first_checkpoint_is_the_sft_init(study):
    # An RL run started from SFT step 10: "base" is the SFT run's first checkpoint, and the
    # "previous" of the RL run's first checkpoint is the SFT checkpoint it started from.
    from sweeps.cli.spectral import spectral

    out, sft = study
    rl = out / "default" / "grpo" / "tiny" / "general_points_compact" / "sft-step=000010" / "seed=0"
    init = Checkpoint(sft / "ckpt" / "step=000010")
    weights = {n: init.load(n).float() for n in init.names()}
    write_ckpt(rl / "ckpt" / "step=000005", weights)  # identical to its init
    (rl / "DONE").write_text("{}")
    res = spectral(spectral_cfg(out, "spectral.stages=[grpo]", "spectral.references=[base,previous]"))
    assert res["runs"] == 1 and res["tables_written"] == 2
    with open(rl / "spectral" / "previous" / "step=000005.csv") as fh:
        assert all(float(r["angle_mean"]) < 1e-12 and float(r["update_norm"]) == 0.0 for r in csv.DictReader(fh))
    with open(rl / "spectral" / "base" / "step=000005.csv") as fh:
        assert all(float(r["angle_mean"]) > 1e-4 for r in csv.DictReader(fh))


def test_corrupted_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError) as err:
        Checkpoint(bad)
    assert one_line(err).startswith(f"cannot read safetensors file {bad / 'model.safetensors'}")
