"""``sweeps-analyze`` through its CLI on a synthetic study (no training; slow).

The study (``tests.unit.test_analysis_curves.make_study``): 3 seeds of SFT with an OOD peak at
step 20, GRPO from 4 init checkpoints (recovery window [30, 60]) and spectral summaries.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_analysis_curves import make_study

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).parent / "sweeps-analyze")
TABLES = [
    "summary",
    "sft_seeds",
    "rl_seeds",
    "windows",
    "peak_tests",
    "curves",
    "rotation_points",
    "correlations",
    "missing",
    "non_finite",
    "tidy",
]


def analyze(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, *args, "analysis.n_resamples=999"], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    make_study(out, skip={(100, 2)})
    res = analyze(out, "study=syn", f"paths.output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_report_references_every_figure_and_each_exists(done):
    report = done / "syn" / "report" / "index.html"
    text = report.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    figures = sorted((done / "syn" / "analysis" / "figures").glob("*.png"))
    assert {(report.parent / s).resolve() for s in srcs} == {f.resolve() for f in figures}
    assert all((report.parent / s).is_file() for s in srcs)
    assert {f.name.split("_")[0] for f in figures} == {"study", "sft", "recovery", "rotation", "layers", "errors"}
    for href in re.findall(r'<a href="([^"]+)"', text):
        assert (report.parent / href).is_file()
    assert "sft-step=000100" in text and "RL run missing" in text  # the missing run is listed


def test_csv_tables_exist(done):
    out = done / "syn" / "analysis"
    for name in TABLES:
        assert (out / f"{name}.csv").is_file(), name
    with open(out / "windows.csv") as fh:
        (w,) = list(csv.DictReader(fh))
    assert (w["lo_step"], w["hi_step"]) == ("30", "60")


def test_parent_run_holds_summary_metrics_with_intervals(done):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{done}/mlflow.db")
    exp = client.get_experiment_by_name("syn")
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("sweeps.role") == "parent"]
    assert parent.data.tags["sweeps.study"] == "syn"
    m = parent.data.metrics
    base = "analysis/tiny/gp/sft/ood_peak_step"
    assert m[base] == 20 and m[base + "_lo"] == 20 and m[base + "_hi"] == 20
    d = "analysis/tiny/gp/grpo/sft-step_000060/d_ood"
    assert m[d + "_lo"] < m[d] < m[d + "_hi"] and m[d + "_lo"] > 0
    assert m["analysis/tiny/gp/corr/angle/spearman"] == pytest.approx(1.0)
    assert "analysis/tiny/gp/corr/sv_drift/spearman_lo" in m
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis")}
    assert "analysis/summary.csv" in arts and "analysis/figures" in arts


def test_rerun_reuses_the_parent_and_study_path_form_works(done):
    res = analyze(done, f"study={done}/syn")
    assert res.returncode == 0, res.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{done}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("syn").experiment_id])
    assert len([r for r in runs if r.data.tags.get("sweeps.role") == "parent"]) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["study=nope"], "study directory"),
        (["study=syn", "analysis.stages=[ppo]"], "analysis.stages names ['ppo']"),
        (["study=syn", "analysis.method=normal"], "analysis.method='normal'"),
    ],
)
def test_bad_input_fails_with_one_line(done, args, message):
    res = analyze(done, *args, f"paths.output_dir={done}", "tracking=none")
    assert res.returncode != 0 and message in res.stderr.strip().splitlines()[-1]


def test_single_seed_study_marks_cis_unavailable(tmp_path):
    make_study(tmp_path, seeds=(0,), spectral=False)
    res = analyze(tmp_path, "study=syn", f"paths.output_dir={tmp_path}", "tracking=none")
    assert res.returncode == 0, res.stderr[-3000:]
    text = (tmp_path / "syn" / "report" / "index.html").read_text()
    assert "CI unavailable" in text and "one seed" in text and "rotation↔OOD unavailable" in text
