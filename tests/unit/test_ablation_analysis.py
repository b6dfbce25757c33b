"""The rotation ablation's analysis on a synthetic study with known answers, and the
rotation-only checkpoint rule.

Plain SFT (init ``base``) and one regularised variant, 3 seeds each; per seed the variant's OOD
curve is the plain one + 0.05 at every checkpoint after step 0 (so OOD max and end differ by
exactly +0.05 per seed: a positive effect whose CI is the point 0.05), ID at the end is the
same (no effect: differences exactly 0), and the variant rotates half as much. The monitor's
angle is 0.01 * step for plain SFT: the rotation rule (last checkpoint with angle <= 0.5 x the
end's, end = step 100) picks step 40 whatever the OOD curve does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweeps.analysis.curves import Options, analyse
from sweeps.analysis.roles import resolve, select_by_rotation
from sweeps.analysis.tables import read_study
from sweeps.runs import run_dir

STEPS = [0, 10, 20, 30, 40, 60, 80, 100]
OOD = [0.10, 0.14, 0.16, 0.15, 0.12, 0.08, 0.05, 0.02]  # peak at step 20
ID = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7]
NOISE = {0: 0.0, 1: 0.01, 2: -0.01}
VARIANT = "rotreg_block_k16_lam1"


def write_run(path: Path, records: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "DONE").write_text("{}\n")
    for s in STEPS:
        (path / "ckpt" / f"step={s:06d}").mkdir(parents=True, exist_ok=True)


def make_study(root: Path) -> Path:
    for seed, off in NOISE.items():
        for variant, bonus, turn in (("", 0.0, 0.01), (VARIANT, 0.05, 0.005)):
            recs = []
            for s, o, i in zip(STEPS, OOD, ID):
                recs.append({"step": s, "eval/ood/success": o + off + (bonus if s else 0.0), "eval/id/success": i})
                if s:
                    recs.append({"step": s, "rotation/angle_mean": turn * s, "rotation/chordal_normalised": turn * s})
            write_run(run_dir(root, "syn", "sft", "m", "t", "base", seed, variant), recs)
    return root / "syn"


def test_select_by_rotation_by_hand():
    angle = {10: 0.1, 20: 0.2, 30: 0.3, 40: 0.4, 60: 0.6, 80: 0.8, 100: 1.0}
    assert select_by_rotation(angle, STEPS) == 40  # 0.4 <= 0.5, 0.6 > 0.5
    assert select_by_rotation(angle, STEPS, fraction=0.25) == 20
    assert select_by_rotation({20: 0.9, 100: 1.0}, STEPS, 0.5) == 10  # step 10: the monitor showed 0 (start) then
    assert select_by_rotation({50: 0.2, 100: 1.0}, [0, 60, 100], 0.5) == 60  # latest monitor value at or before 60
    with pytest.raises(ValueError, match="rotation_monitor"):
        select_by_rotation({}, STEPS)


def test_ablation_effects_and_selection_gaps(tmp_path):
    study = read_study(make_study(tmp_path))
    res = analyse(study, Options(n_resamples=199))
    # plain SFT's own tables are untouched by the variant runs
    assert {r["seed"] for r in res.sft_seeds} == {0, 1, 2} and len(res.sft_seeds) == 3
    assert next(r for r in res.summary if r["metric"] == "ood_max_value")["estimate"] == pytest.approx(0.16)
    diff = {r["metric"]: r for r in res.ablation if r["comparison"] != "value"}
    assert diff["ood_max_value"]["estimate"] == pytest.approx(0.05)
    assert diff["ood_max_value"]["lo"] == pytest.approx(0.05) and diff["ood_max_value"]["effect"].startswith("positive")
    assert diff["ood_end_value"]["estimate"] == pytest.approx(0.05)
    assert diff["id_end_value"]["estimate"] == 0.0 and diff["id_end_value"]["effect"].startswith("none")
    assert diff["rotation_end"]["estimate"] == pytest.approx(-0.5) and diff["rotation_end"]["effect"].startswith(
        "negative"
    )
    assert diff["ood_max_value"]["p_above"] == pytest.approx(1 / 8)  # 3 seeds: the smallest sign-flip p
    # selection: plain SFT picks step 40 (OOD 0.12 vs peak 0.16: gap -0.04 every seed); last: -0.14
    sel = {(r["init"], r["rule"], r["metric"]): r for r in res.selection}
    assert sel[("base", "rotation", "picked_step")]["estimate"] == 40
    assert sel[("base", "rotation", "gap_to_ood_peak")]["estimate"] == pytest.approx(-0.04)
    assert sel[("base", "last", "gap_to_ood_peak")]["estimate"] == pytest.approx(-0.14)
    assert sel[("base", "id_peak", "picked_step")]["estimate"] == 100
    assert sel[("base", "rotation - last", "gap_difference")]["estimate"] == pytest.approx(0.10)
    assert sel[(f"base+{VARIANT}", "rotation", "picked_step")]["estimate"] == 40
    curves = {(r["init"], r["metric"], r["step"]): r["mean"] for r in res.ablation_curves}
    assert curves[(f"base+{VARIANT}", "rotation/angle_mean", 100)] == pytest.approx(0.5)
    assert curves[("base", "eval/ood/success", 20)] == pytest.approx(0.16)


def test_rotation_select_is_a_role(tmp_path):
    root = make_study(tmp_path)
    assert resolve("rotation_select", root / "sft" / "m" / "t" / "base" / "seed=1") == 40
    assert resolve("ood_peak", root / "sft" / "m" / "t" / "base" / "seed=1") == 20  # the rule ignores OOD


def test_report_and_tables_have_the_ablation(tmp_path):
    from sweeps.analysis import plots, report

    root = make_study(tmp_path)
    study = read_study(root)
    res = analyse(study, Options(n_resamples=199))
    tables = report.write_tables(res, study, root / "analysis")
    assert {"ablation.csv", "selection.csv", "ablation_curves.csv", "selection_seeds.csv"} <= {t.name for t in tables}
    figures = plots.draw_all(res, study, root / "analysis" / "figures")
    assert any(p.name.startswith("ablation_") for _, p in figures)
    page = report.write_report(res, study, figures, tables, root / "report" / "index.html").read_text()
    assert "Rotation-preserving SFT vs plain SFT" in page and "Checkpoint selection by rotation" in page
    metrics = report.summary_metrics(res)
    assert metrics[f"analysis/m/t/ablation/base_{VARIANT}/ood_max_value_vs_plain"] == pytest.approx(0.05)
    assert metrics["analysis/m/t/selection/base/rotation/gap_to_ood_peak"] == pytest.approx(-0.04)


def test_ablation_report_writes_the_readme_section_and_docs(tmp_path):
    from sweeps.analysis import report
    from sweeps.cli import ablation_report

    root = make_study(tmp_path)
    study = read_study(root)
    report.write_tables(analyse(study, Options(n_resamples=199)), study, root / "analysis")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- syn:begin -->\nold\n<!-- syn:end -->\nrest\n")
    ablation_report.main([str(root), "--readme", str(readme), "--docs", str(tmp_path / "docs")])
    text = readme.read_text()
    assert (
        text.startswith("intro\n<!-- syn:begin -->\n")
        and text.endswith("<!-- syn:end -->\nrest\n")
        and "old" not in text
    )
    assert (
        "| OOD peak (max over checkpoints) | 0.160 [0.150, 0.170] | 0.210 [0.200, 0.220]; vs plain 0.050 [0.050, 0.050] (CI > 0) |"
        in text
    )
    assert "| plain SFT | rotation rule (no OOD data) | 40 [40, 40] | -0.040 [-0.040, -0.040] (CI < 0) |" in text
    assert (tmp_path / "docs" / "syn.md").read_text().count("| quantity |") == 1
