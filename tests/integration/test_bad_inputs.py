"""Bad configs and inputs, each run as a user would (Step 9, item 4; slow: 40-60 s on 2 cores).

Every case must exit non-zero with ONE line on stderr (``error: ...``, no traceback) that names
the key or file at fault. Hydra composition and entry-point behaviour (sweeps-eval, -study,
-analyze, -spectral, -sync, a ``-m`` launch) run as subprocesses of the real commands; the rest
call the function the entry point calls under :func:`sweeps.cli.one_line_errors` with a config
composed exactly as the entry point composes it. The checks that only need ``schema.validate``
are in tests/unit/test_configs.py; these add the entry points, the checkpoints and the run files.
The case table and the file surgery it uses are in ``bad_input_cases.py``; this file runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import compose
from tests.integration.bad_input_cases import CASES, SFT, SFT_RUN, copy_out

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """One finished tiny SFT run (checkpoints at steps 1 and 2, resume state of step 2)."""
    from sweeps.cli.train import train

    out = tmp_path_factory.mktemp("bad_inputs")
    train(compose([*SFT, f"paths.output_dir={out}"]))
    assert (out / SFT_RUN / "DONE").is_file()
    return out


def in_process(entry: str, args: list[str]) -> str:
    """The entry point's function on a config composed as the entry point composes it; returns
    the message of the SystemExit that one_line_errors raises."""
    from sweeps.cli import one_line_errors
    from sweeps.cli.eval import evaluate
    from sweeps.cli.plan import memory_plan
    from sweeps.cli.train import train

    fn, config = {"train": (train, "train"), "eval": (evaluate, "eval"), "plan": (memory_plan, "train")}[entry]
    cfg = compose(args, config_name=config)
    with pytest.raises(SystemExit) as e:
        one_line_errors(fn, cfg)
    assert isinstance(e.value.code, str), e.value.code  # a message, which Python prints, and status 1
    return e.value.code


def as_user(entry: str, args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    res = subprocess.run([str(BIN / entry), *args], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 1, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stdout + res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_naming_the_culprit(case, base, tmp_path, capfd):
    if case.setup is not None:
        case.setup(tmp_path, base)
    args = [*case.common, *(a.format(tmp=tmp_path) for a in case.args)]
    args = sorted(args, key=lambda a: not a.startswith("-"))  # flags (-m) before the overrides
    line = as_user(case.entry, args) if case.entry.startswith("sweeps-") else in_process(case.entry, args)
    assert "Traceback" not in capfd.readouterr().err
    assert line.startswith("error: ") and "\n" not in line.strip(), line
    for needle in case.needles:
        assert needle.format(tmp=tmp_path) in line, (needle, line)


def test_enough_cases():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_resume_after_a_torn_metrics_line_and_a_torn_evalset(base, tmp_path):
    """An append-only log torn mid-line (a crash while appending) and a torn cache of the frozen
    evaluation set do not stop a resumed job: the torn line is dropped, the set drawn again."""
    from sweeps.cli.train import train

    run = copy_out(tmp_path, base)
    before = (run / "metrics.jsonl").read_text()
    (run / "DONE").unlink()  # unfinished: resumes from the state of step 2
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "train/lo')
    (evalset,) = (tmp_path / "out" / "bi" / "evalsets").glob("*.jsonl")
    frozen = evalset.read_text()
    evalset.write_text(frozen[: len(frozen) // 2])
    summary = train(compose([*SFT, f"paths.output_dir={tmp_path / 'out'}"]))
    assert summary["checkpoints"] == [1, 2]
    assert (run / "DONE").is_file()
    assert (run / "metrics.jsonl").read_text() == before
    assert evalset.read_text() == frozen
