"""The entry points: one module each under ``sweeps.cli``, each short; one error list; one
output-path normalisation."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import sweeps.cli
from sweeps.cli import USER_ERRORS, absolute_output_dir, one_line_errors

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sweeps.cli.__file__).parent
_SECTION = (ROOT / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^(\S+) = "(\S+)"', _SECTION, re.M))  # [project.scripts] (no tomllib on 3.10)
# python -m entry points without a console script
MODULES = ["sweeps.cli.demo_report", "sweeps.cli.ablation_report"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_console_script_is_a_main_in_sweeps_cli(script):
    assert len(SCRIPTS) == 7
    module, _, attr = SCRIPTS[script].partition(":")
    assert module.startswith("sweeps.cli.") and attr == "main", f"{script} = {SCRIPTS[script]}"
    assert callable(getattr(importlib.import_module(module), attr))


@pytest.mark.parametrize("module", MODULES)
def test_report_modules_expose_main(module):
    assert callable(importlib.import_module(module).main)


def test_every_file_in_sweeps_cli_is_under_80_lines():
    files = sorted(CLI.glob("*.py"))
    assert len(files) >= 10  # __init__, hydra_errors and the nine entry points
    long = {f.name: n for f in files if (n := len(f.read_text().splitlines())) >= 80}
    assert not long, f"entry points must stay under 80 lines: {long}"


def test_no_entry_point_module_left_at_the_top_level():
    top = {p.stem for p in (CLI.parent).glob("*.py")}
    old = {"cli", "train", "evaluate", "plan", "study", "analyze", "spectral_job", "summary"}
    assert not top & old, sorted(top & old)


@pytest.mark.parametrize(
    "err",
    [  # what JOB_ERRORS (launching) and USER_ERRORS (entry points) caught before they were merged
        ValueError("bad value"),
        RuntimeError("bad state"),
        FileNotFoundError("no such file"),
        FloatingPointError("loss is nan"),
        sweeps.cli.Preempted("stopped"),  # a RuntimeError, handled before the others
    ],
)
def test_the_one_error_list_catches_what_both_old_lists_caught(err):
    assert isinstance(err, USER_ERRORS)

    def fail():
        raise err

    with pytest.raises(SystemExit) as exit_:
        one_line_errors(fail)
    code = exit_.value.code
    assert code == 143 if isinstance(err, sweeps.cli.Preempted) else code == f"error: {err}"


def test_a_bug_is_not_a_user_error():
    def bug():
        raise KeyError("k")

    with pytest.raises(KeyError):
        one_line_errors(bug)


def test_launching_uses_the_same_error_list():
    import sweeps.launching

    assert not hasattr(sweeps.launching, "JOB_ERRORS") and sweeps.launching.USER_ERRORS is USER_ERRORS


@pytest.mark.parametrize(
    "given, expected",
    [
        ("outputs", lambda cwd, home: f"{cwd}/outputs"),
        ("./a/../b", lambda cwd, home: f"{cwd}/b"),
        ("/abs/dir", lambda cwd, home: "/abs/dir"),
        ("/abs/dir/../x/", lambda cwd, home: "/abs/x"),
        ("~/runs", lambda cwd, home: f"{home}/runs"),
    ],
)
def test_absolute_output_dir(tmp_path, monkeypatch, given, expected):
    cwd, home = tmp_path / "work", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    cfg = OmegaConf.create({"paths": {"output_dir": given}})
    OmegaConf.set_struct(cfg, True)
    want = expected(os.path.realpath(cwd), os.path.realpath(home))
    assert absolute_output_dir(cfg) == want
    assert cfg.paths.output_dir == want


@pytest.mark.parametrize("tracking, parent", [("mlflow_local", True), ("mlflow_server", True), ("none", False)])
def test_the_tracking_config_says_whether_a_study_has_a_parent_run(tracking, parent, tmp_path):
    from sweeps.driver import parent_run
    from tests.conftest import compose

    cfg = compose([f"tracking={tracking}", f"paths.output_dir={tmp_path}"])
    assert cfg.tracking.parent_run is parent
    if not parent:  # no MLflow store is touched
        assert parent_run(cfg) is None and not (tmp_path / "mlflow.db").exists()
