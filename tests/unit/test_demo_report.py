"""The README's demo section is generated from the analysis tables, and base export is atomic."""

from __future__ import annotations

import csv
import json

import pytest

from sweeps.analysis.demo_report import ci, replace_section, section


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_ci_formats_estimate_interval_and_sign():
    assert ci({"estimate": "0.25", "lo": "0.1", "hi": "0.4"}) == "0.250 [0.100, 0.400] (CI > 0)"
    assert ci({"estimate": "-0.2", "lo": "-0.3", "hi": "-0.1"}, 2) == "-0.20 [-0.30, -0.10] (CI < 0)"
    assert ci({"estimate": "0.0", "lo": "-0.1", "hi": "0.1"}) == "0.000 [-0.100, 0.100]"
    assert ci({"estimate": "0.5", "lo": "nan", "hi": "nan"}) == "0.500"
    assert ci(None) == "n/a" and ci({"estimate": ""}) == "n/a"


def test_section_lists_sft_rl_window_and_correlations(tmp_path):
    a = tmp_path / "tiny_demo" / "analysis"
    base = {"model": "tiny_base", "task": "t", "init": "", "init_step": "", "n": "3", "note": ""}
    _write(
        a / "summary.csv",
        [
            {**base, "stage": "sft", "metric": "ood_peak_step", "estimate": "40", "lo": "30", "hi": "60"},
            {**base, "stage": "sft", "metric": "ood_drop_crossfit", "estimate": "0.1", "lo": "0.05", "hi": "0.2"},
            {**base, "stage": "sft", "metric": "ood_end_value", "estimate": "0.2", "lo": "0.1", "hi": "0.3"},
            {
                **base,
                "stage": "grpo",
                "init": "sft-step=000100",
                "init_step": "100",
                "metric": "d_ood",
                "estimate": "0.05",
                "lo": "0.01",
                "hi": "0.09",
            },
            {
                **base,
                "stage": "grpo",
                "init": "sft-step=000100",
                "init_step": "100",
                "metric": "d_id",
                "estimate": "0.1",
                "lo": "-0.1",
                "hi": "0.3",
            },
        ],
    )
    _write(a / "windows.csv", [{"stage": "grpo", "window": "[100]"}])
    _write(
        a / "correlations.csv",
        [
            {
                "scalar": "angle",
                "role": "rotation",
                "reference": "ood_peak",
                "correlation": "spearman",
                "estimate": "0.6",
                "lo": "0.2",
                "hi": "0.9",
            }
        ],
    )
    text = section(tmp_path / "tiny_demo", "docs/tiny_demo.png")
    assert "![tiny_demo" in text and "mean over 3 seeds" in text
    assert "| SFT: OOD peak step | 40 [30, 60] (CI > 0) |" in text
    assert "| SFT: OOD peak − end, cross-fitted (unbiased) | 0.100 [0.050, 0.200] (CI > 0) |" in text
    assert "| grpo from SFT step 100: ΔOOD / ΔID | 0.050 [0.010, 0.090] (CI > 0) / 0.100 [-0.100, 0.300] |" in text
    assert "| grpo: recovery window (inits with ΔOOD CI > 0) | [100] |" in text
    assert "Spearman(angle vs OOD drop), rotation, ref ood_peak | 0.60 [0.20, 0.90] (CI > 0)" in text


def test_replace_section_rewrites_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- s:begin -->\nold\n<!-- s:end -->\noutro\n")
    replace_section(readme, "s", "new\n")
    assert readme.read_text() == "intro\n<!-- s:begin -->\nnew\n<!-- s:end -->\noutro\n"
    with pytest.raises(SystemExit, match="markers"):
        replace_section(readme, "other", "x\n")


def test_export_base_copies_the_last_checkpoint_of_finished_runs(tmp_path, tiny):
    from sweeps.models.checkpoint import load_checkpoint, save_checkpoint
    from sweeps.models.export_base import export
    from sweeps.runs import Run

    model, tok = tiny
    done = tmp_path / "study" / "pretrain" / "tiny" / "gp" / "scratch" / "seed=1"
    unfinished = done.parent / "seed=2"
    for path in (done, unfinished):
        run = Run(path)
        save_checkpoint(model, tok, run.ckpt(5))
        save_checkpoint(model, tok, run.ckpt(10))
        (path / "config.yaml").write_text("study: study\n")
        (path / "signature").write_text("abc\n")
        (path / "metrics.jsonl").write_text(
            json.dumps({"step": 10, "eval/id/success": 0.5, "eval/ood/success": 0.25}) + "\n"
        )
    Run(done).mark_done({"ok": 1})
    written = export(tmp_path / "study", tmp_path / "bases")
    assert written == [tmp_path / "bases" / "base1"] and not (tmp_path / "bases" / "base2").exists()
    prov = json.loads((written[0] / "provenance.json").read_text())
    assert prov["step"] == 10 and prov["eval"] == {"eval/id/success": 0.5, "eval/ood/success": 0.25}
    assert prov["command"].endswith("experiment=study seed=1")
    reloaded, _ = load_checkpoint(written[0])
    assert all((a == b).all() for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    assert not [p for p in (tmp_path / "bases").iterdir() if p.name.startswith(".")]  # no temp dirs left
