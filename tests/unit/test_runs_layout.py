"""The run-directory grammar (``sweeps.runs.layout``): paths written by hand, round trips, one-line
refusals, and a scan that no code outside the layout module splits or spells a run path."""

import re
from pathlib import Path

import pytest

from sweeps.runs import layout
from sweeps.runs.layout import LayoutError, RunKey

REPO = Path(__file__).resolve().parents[2]

CASES = [
    (RunKey("sft", "tiny", "general_points", "base", 0), "sft/tiny/general_points/base/seed=0"),
    (
        RunKey("sft", "tiny", "general_points", "base+rotreg_block_k16_lam0.1", 2),
        "sft/tiny/general_points/base+rotreg_block_k16_lam0.1/seed=2",
    ),
    (RunKey("grpo", "qwen2_5_7b", "route", "sft-step=000120", 1), "grpo/qwen2_5_7b/route/sft-step=000120/seed=1"),
    (RunKey("pretrain", "tiny", "gp", "scratch", 10), "pretrain/tiny/gp/scratch/seed=10"),
]


@pytest.mark.parametrize("key,rel", CASES)
def test_format_and_parse_round_trip(tmp_path, key, rel):
    path = layout.format(tmp_path / "study", key)
    assert path == tmp_path / "study" / rel
    assert layout.parse(path) == key and layout.parse(str(path)) == key
    assert key.relative() == rel
    assert layout.run_dir(tmp_path, "study", *key) == path


def test_init_axis_and_checkpoint_names():
    assert layout.sft_init(120) == "sft-step=000120" and layout.sft_init_step("sft-step=000120") == 120
    assert layout.sft_init_step("base") is None and layout.sft_init_step("sft-x") is None
    assert RunKey("grpo", "m", "t", "sft-step=000040", 0).init_step == 40
    assert RunKey("sft", "m", "t", "base+rotreg_block_k16_lam0.1", 0).variant == "rotreg_block_k16_lam0.1"
    assert layout.with_variant("base", "") == "base" and layout.split_variant("base+v") == ("base", "v")
    assert layout.run_dir("o", "s", "sft", "m", "t", "base", 3, variant="v") == Path("o/s/sft/m/t/base+v/seed=3")
    assert layout.ckpt_name(7) == "step=000007" and layout.step_of("step=000007") == 7
    assert layout.step_of("step=1234567") == 1234567 and layout.step_of("step=000300.csv") == 300
    assert layout.maybe_step("eval.json") is None
    assert layout.ckpt("r", 40) == Path("r/ckpt/step=000040")
    assert layout.spectral_table("r", "base", 40) == Path("r/spectral/base/step=000040.csv")


@pytest.mark.parametrize(
    "bad,match",
    [
        ("out/study/sft/tiny/gp/base/seed0", "is not a run directory"),
        ("out/study/sft/tiny/gp/base/seed=x", "is not a run directory"),
        ("gp/base/seed=0", "is not a run directory"),
    ],
)
def test_bad_run_paths_are_one_line_errors(bad, match):
    with pytest.raises(LayoutError, match=match) as err:
        layout.parse(bad)
    assert "\n" not in str(err.value) and bad in str(err.value)


def test_init_of_a_run_in_its_grid_and_of_one_copied_out(tmp_path):
    assert layout.init_of(tmp_path / "s/grpo/m/t/sft-step=000040/seed=2") == "sft-step=000040"
    assert layout.init_of(tmp_path / "copied/sft-step=000040/run") == "sft-step=000040"  # sweeps-sync on a copy


def test_bad_names_are_one_line_errors(tmp_path):
    for name in ("step=", "step=abc", "ckpt", "step=-1"):
        with pytest.raises(LayoutError, match="is not a checkpoint name: expected step=<N>") as err:
            layout.step_of(name)
        assert "\n" not in str(err.value)
    for key in (
        RunKey("", "m", "t", "base", 0),
        RunKey("sft", "a/b", "t", "base", 0),
        RunKey("sft", "m", "t", "..", 0),
    ):
        with pytest.raises(LayoutError, match="is not a directory name") as err:
            layout.format(tmp_path, key)
        assert "\n" not in str(err.value)


def test_runs_checkpoints_and_steps(tmp_path):
    study = tmp_path / "study"
    keys = [k for k, _ in CASES]
    for key in keys:
        layout.format(study, key).mkdir(parents=True)
    (study / "analysis" / "m" / "t" / "x" / "seed=0").mkdir(parents=True)  # not a stage
    (study / "sft" / "tiny" / "general_points" / "base" / "seed=zero").mkdir()  # not a seed
    found = layout.runs(study)
    assert [k for k, _ in found] == sorted(keys, key=lambda k: layout.format(study, k))  # by path, as before
    assert all(layout.format(study, k) == p for k, p in found)
    assert [k.seed for k, _ in layout.runs(study, "sft", seed=2)] == [2]
    assert [k.init for k, _ in layout.runs(study, stage="pretrain", init=layout.SCRATCH)] == ["scratch"]
    run = layout.format(study, keys[0])
    for step in (300, 20, 100):
        layout.ckpt(run, step).mkdir(parents=True)
    (run / "ckpt" / ".step=000400.tmp").mkdir()  # a checkpoint being written
    (run / "ckpt" / "step=abc").mkdir()
    assert layout.steps(run) == [20, 100, 300]
    assert layout.checkpoints(run)[0] == (20, run / "ckpt" / "step=000020")
    assert layout.steps(tmp_path / "nowhere") == []
    (run / "metrics.jsonl").write_text("")
    (run / "config.yaml").write_text("")
    assert layout.find_runs_below(tmp_path) == [run]
    assert layout.run_files(study, layout.METRICS) == [run / "metrics.jsonl"]


# --- nothing outside the layout module knows the grammar --------------------------------------------
# Each pattern is a way code has split or spelled a run path by position or prefix.
SPLITTING = {
    "path components by position": r"\.parts\[",
    "the init axis as a parent's name": r"\.parent\.name\b",
    "a glob over the run grammar": r"glob\([^)]*(seed=|step=|\*/\*/\*)",
    "a name split at '='": r"\.(name|stem)\.(split|partition)\(",
    "a prefix test on a run or checkpoint name": r"startswith\(\s*f?[\"'](step=|seed=|sft-)",
    "a run or checkpoint name spelled out": r"/\s*(f[\"'])?(step|seed)=\{|f[\"']step=\{|:06d\}",
    "an RL init spelled out": r"[\"']sft-",
    "a path string split at '/' and indexed from the end": r"split\(\s*(os\.sep|[\"']/[\"'])\s*\)\s*\[\s*-",
    "an ancestor by position (other than the repository root)": r"(?<!__file__\)\.resolve\(\))\.parents\[",
}
OWNER = REPO / "src" / "sweeps" / "runs" / "layout.py"


def test_no_code_outside_the_layout_module_splits_a_run_path():
    hits = []
    for top in ("src", "bench"):
        for f in sorted((REPO / top).rglob("*.py")):
            if f == OWNER:
                continue
            for n, line in enumerate(f.read_text().splitlines(), 1):
                for what, pattern in SPLITTING.items():
                    if re.search(pattern, line):
                        hits.append(f"{f.relative_to(REPO)}:{n}: {what}: {line.strip()}")
    assert not hits, "ask sweeps.runs.layout instead:\n" + "\n".join(hits)


CAUGHT = [
    ("path components by position", "stage = path.parts[-5]"),
    ("the init axis as a parent's name", "init = run.path.parent.name"),
    ("a glob over the run grammar", 'for d in sorted(root.glob("*/*/*/*/seed=*")):'),
    ("a name split at '='", 'step = int(ckpt.name.split("=", 1)[1])'),
    ("a prefix test on a run or checkpoint name", 'if init.startswith("sft-"):'),
    ("a run or checkpoint name spelled out", 'path = root / f"step={t:06d}"'),
    ("a run or checkpoint name spelled out", 'run = root / key.init / f"seed={key.seed}"'),
    ("a run or checkpoint name spelled out", 'name = f"{stage}/{model}/{task}/{init}/seed={seed}"'),
    ("an RL init spelled out", 'init = f"sft-{ckpt_name(t)}"'),
    ("a path string split at '/' and indexed from the end", 'stage = str(run).split("/")[-5]'),
    ("a path string split at '/' and indexed from the end", "seed = path.split(os.sep)[-1]"),
    ("an ancestor by position (other than the repository root)", "study = run.parents[4]"),
]


@pytest.mark.parametrize("what,line", CAUGHT)
def test_the_scan_catches_each_way_of_splitting(what, line):
    assert re.search(SPLITTING[what], line)


def test_every_pattern_has_a_planted_line():
    assert {what for what, _ in CAUGHT} == set(SPLITTING)


@pytest.mark.parametrize(
    "line",
    [
        "REPO = Path(__file__).resolve().parents[2]",  # the repository root, not a run
        "f\"{k.split('/')[1]} {v:.3f}\"",  # a metric name (eval/id/success)
        'label = metric.rsplit("/", 1)[1]',
    ],
)
def test_the_scan_leaves_other_paths_and_metric_names_alone(line):
    assert not [what for what, p in SPLITTING.items() if re.search(p, line)]
