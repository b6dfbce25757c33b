"""The analysis's positive control through its command and ``sweeps-analyze``'s CLI (slow).

``python -m sweeps.analysis.synthetic OUT`` writes the planted studies (OOD peak at step 40 in
seeds 0 and 1 and at 30 in seed 2, recovery window {60, 80, 100}; and a null study with neither), runs ``sweeps-analyze`` on each and checks
its tables. Here the tables and the HTML report are also read directly, and a planted answer the
analysis did not produce must make the check fail (exit status 1).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from sweeps.analysis.synthetic import check_study

pytestmark = pytest.mark.slow


def control(out, *args: str) -> subprocess.CompletedProcess:
    """The control's command on ``out``, run there (sweeps-analyze's Hydra files go under its cwd)."""
    return subprocess.run(
        [sys.executable, "-m", "sweeps.analysis.synthetic", str(out), *args],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=600,
    )


def table(study, name):
    with open(study / "analysis" / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("control")
    res = control(out, "analysis.n_resamples=999")
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "ok control_peak" in res.stdout and "ok control_null" in res.stdout, res.stdout
    return out


def test_the_report_finds_the_planted_peak_and_window(out):
    study = out / "control_peak"
    assert [r["peak_step"] for r in table(study, "sft_seeds")] == ["40", "40", "30"]
    summary = {(r["stage"], r["init"], r["metric"]): r for r in table(study, "summary")}
    step = summary[("sft", "", "ood_peak_step")]
    assert (float(step["estimate"]), float(step["lo"]), float(step["hi"])) == (pytest.approx(110 / 3), 30, 40)
    value = summary[("sft", "", "ood_peak_value")]
    assert float(value["estimate"]) == pytest.approx(0.40) and float(value["lo"]) < 0.40 < float(value["hi"])
    d = summary[("grpo", "sft-step=000060", "d_ood")]
    assert float(d["estimate"]) == pytest.approx(0.04) and 0 < float(d["lo"]) < 0.04 < float(d["hi"])
    (w,) = table(study, "windows")
    assert (w["window"], w["lo_step"], w["hi_step"]) == ("[60, 80, 100]", "60", "100")
    html = (study / "report" / "index.html").read_text()
    windows = html.split("<h2>Recovery windows</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<td>[60, 80, 100]</td><td>60</td><td>100</td>" in windows
    assert "<td>ood_peak_step</td><td>36.67 [30, 40]</td>" in html


def test_the_null_report_finds_no_peak_and_no_window(out):
    study = out / "control_null"
    seeds = table(study, "sft_seeds")
    assert [r["peak_step"] for r in seeds] == ["", "", ""] and all("no decline" in r["no_peak"] for r in seeds)
    (w,) = table(study, "windows")
    assert (w["window"], w["lo_step"], w["positive_estimate"]) == ("[]", "", "[]")
    assert "3 of 3 seeds without a peak" in (study / "report" / "index.html").read_text()


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("window", [60, 80], "recovery window [[60, 80, 100]], planted [60, 80]"),
        ("peak_steps", {"0": 40, "1": 40, "2": 40}, "seed 2: OOD peak step 30, planted 40"),
    ],
)
def test_a_planted_answer_the_analysis_did_not_find_fails(out, tmp_path, field, value, message):
    import shutil

    for name in ("control_peak", "control_null"):
        shutil.copytree(out / name, tmp_path / name, ignore=shutil.ignore_patterns("sft", "grpo", "evalsets"))
    planted = tmp_path / "control_peak" / "planted.json"
    planted.write_text(json.dumps({**json.loads(planted.read_text()), field: value}))
    assert any(message in b for b in check_study(tmp_path / "control_peak"))
    res = control(tmp_path, "--check-only")
    assert res.returncode == 1 and "FAIL control_peak" in res.stdout and "ok control_null" in res.stdout, res.stdout


def test_an_existing_study_is_not_overwritten(out):
    res = control(out)
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1].startswith("error:") and "exists" in res.stderr
