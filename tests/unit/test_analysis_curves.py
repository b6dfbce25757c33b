"""Synthetic studies with known answers: peaks, recovery windows, correlations, bad input.

``make_study`` writes run directories as the training and spectral stages do (metrics.jsonl,
DONE, spectral/summary.csv) from curves chosen so every answer is known in advance:

- SFT OOD success peaks at step 20 (0.20 + seed offset) and decays to 0.06 at step 100;
- RL from init t changes OOD by DELTA[t] (+ a seed offset): -0.05, +0.01, +0.06, -0.02 for
  t = 10, 30, 60, 100, so the recovery window is [30, 60] and RL never reaches the peak;
- the mean principal angle to the OOD-peak checkpoint is 2 x the OOD drop (Spearman = 1),
  and the singular-value drift grows with the step (not with the drop): the control.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sweeps.analysis.curves import Options, analyse, find_peak, recovery_ratio, recovery_window
from sweeps.analysis.tables import read_study
from sweeps.runs import run_dir

STEPS = [0, 10, 20, 30, 40, 60, 80, 100]
OOD_CURVE = [0.05, 0.15, 0.20, 0.18, 0.14, 0.10, 0.08, 0.06]
ID_CURVE = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7]
DELTA = {10: -0.05, 30: 0.01, 60: 0.06, 100: -0.02}
NOISE = {0: 0.0, 1: 0.004, 2: -0.004}
OPTS = Options(n_resamples=999)


def write_run(path: Path, records: list[dict], done: bool = True) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if done:
        (path / "DONE").write_text("{}\n")


def evals(step: int, ood: float, idv: float) -> dict:
    return {
        "step": step,
        "eval/ood/success": ood,
        "eval/id/success": idv,
        "eval/ood/err/illegal_formula": 1 - ood,
        "eval/id/err/illegal_formula": 1 - idv,
    }


def spectral_rows(steps: list[int], oods: list[float], peak: float, seed: int) -> str:
    lines = ["step,reference,group,angle_mean,u_chordal_normalised,v_chordal_normalised,u_chordal_random,sv_drift"]
    for s, o in zip(steps, oods):
        angle = 2 * (peak - o)
        drift = 0.001 * ((s * 7 + seed * 3) % 11)  # unrelated to the drop
        for group in ("all", "layer0", "layer1"):
            lines.append(f"{s},ood_peak,{group},{angle},{angle / 2},{angle / 2},0.9,{drift}")
    return "\n".join(lines) + "\n"


def make_study(root: Path, seeds=(0, 1, 2), flat=False, skip=(), nan=(), spectral=True, algo="grpo") -> Path:
    """The study ``root/syn`` (see module doc); ``skip``: (init, seed) RL runs left out;
    ``nan``: (seed, step) SFT OOD values written as NaN."""
    for seed in seeds:
        off = NOISE[seed]
        oods = [0.1] * len(STEPS) if flat else [v + off for v in OOD_CURVE]
        recs = [evals(s, float("nan") if (seed, s) in nan else o, i) for s, o, i in zip(STEPS, oods, ID_CURVE)]
        sft = run_dir(root, "syn", "sft", "tiny", "gp", "base", seed)
        write_run(sft, [{"step": 1, "train/loss": 1.0}] + recs)
        if spectral:
            (sft / "spectral").mkdir()
            (sft / "spectral" / "summary.csv").write_text(spectral_rows(STEPS, oods, max(oods), seed))
        for t, d in DELTA.items():
            if (t, seed) in skip:
                continue
            start = oods[STEPS.index(t)]
            rl = [
                evals(0, start, ID_CURVE[STEPS.index(t)]),
                {"step": 5, "train/loss": 0.3},
                evals(20, start + d + off, ID_CURVE[STEPS.index(t)] + 0.01),
            ]
            write_run(run_dir(root, "syn", algo, "tiny", "gp", f"sft-step={t:06d}", seed), rl)
    return root / "syn"


def row(res, metric, stage="sft", init=""):
    return next(r for r in res.summary if r["metric"] == metric and r["stage"] == stage and r.get("init", "") == init)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    study = read_study(make_study(tmp_path_factory.mktemp("s")))
    return study, analyse(study, OPTS)


def test_peak_and_end_recovered(full):
    study, res = full
    assert [r["peak_step"] for r in res.sft_seeds] == [20, 20, 20]
    assert row(res, "ood_peak_step")["estimate"] == 20 and row(res, "ood_peak_step")["lo"] == 20
    value = row(res, "ood_peak_value")
    assert value["estimate"] == pytest.approx(0.20) and value["lo"] < 0.20 < value["hi"]
    assert row(res, "ood_end_value")["estimate"] == pytest.approx(0.06)
    assert row(res, "id_at_peak")["estimate"] == pytest.approx(0.3)
    assert not study.missing and not study.non_finite


def test_rl_deltas_ratio_and_window(full):
    _, res = full
    for t, d in DELTA.items():
        r = row(res, "d_ood", "grpo", f"sft-step={t:06d}")
        assert r["estimate"] == pytest.approx(d) and r["n"] == 3
    # recovery ratio at init 60: (RL_End - SFT(60)) / (SFT_MaxOOD - SFT(60)) = (0.06 + off) / 0.10 -> mean 0.6
    assert row(res, "recovery_ratio", "grpo", "sft-step=000060")["estimate"] == pytest.approx(0.6)
    assert all(r["is_sft_end"] == (r["init_step"] == 100) for r in res.rl_seeds)
    (w,) = res.windows
    assert w["window"] == [30, 60] and (w["lo_step"], w["hi_step"]) == (30, 60) and w["contiguous"]


def test_rl_never_surpasses_the_peak(full):
    _, res = full
    (t,) = res.tests
    # best RL end per seed is at init 30: 0.18 + 0.01 + 2 off vs peak 0.20 + off -> -0.01 + off
    assert t["never_surpasses"] and t["estimate"] == pytest.approx(-0.01) and t["hi"] < 0
    assert t["p_below"] == pytest.approx(1 / 8) and t["exact"] == 1  # 3 seeds: the smallest p possible
    assert not any(r["exceeds_peak"] for r in res.rl_seeds)


def test_rotation_correlates_and_drift_is_the_control(full):
    _, res = full
    corr = {(c["scalar"], c["correlation"]): c for c in res.correlations}
    for scalar in ("angle", "chordal"):
        assert corr[(scalar, "spearman")]["estimate"] == pytest.approx(1.0)
        assert corr[(scalar, "pearson")]["lo"] > 0.99 and corr[(scalar, "pearson")]["n_seeds"] == 3
    assert abs(corr[("sv_drift", "spearman")]["estimate"]) < 0.5
    assert corr[("sv_drift", "spearman")]["role"] == "control" and corr[("angle", "pearson")]["reference"] == "ood_peak"


def test_flat_curve_has_no_peak(tmp_path):
    res = analyse(read_study(make_study(tmp_path, flat=True)), OPTS)
    assert all(r["peak_step"] is None and "flat" in r["no_peak"] for r in res.sft_seeds)
    assert (
        math.isnan(row(res, "ood_peak_step")["estimate"])
        and "3 of 3 seeds without a peak" in row(res, "ood_peak_step")["note"]
    )
    ratio = row(res, "recovery_ratio", "grpo", "sft-step=000060")
    assert math.isnan(ratio["estimate"]) and "no OOD lost" in ratio["note"]


@pytest.mark.parametrize(
    "steps,values,step,reason",
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], None, "no decline"),  # max at the last checkpoint
        ([0, 1, 2], [0.1, 0.3, 0.3], None, "no decline"),  # plateau to the end
        ([0, 1, 2], [0.3, 0.1, 0.1], 0, ""),  # the base is best: a peak at step 0
        ([5], [0.3], None, "single"),
        ([0, 1, 2], [0.2, 0.3, 0.2], 1, ""),
    ],
)
def test_peak_definition(steps, values, step, reason):
    p = find_peak(steps, values, 1e-6)
    assert p["peak_step"] == step and reason in p["no_peak"] and p["max_value"] == max(values)


def test_recovery_ratio_guard():
    assert recovery_ratio(0.16, 0.10, 0.20, 1e-6) == (pytest.approx(0.6), "")
    ratio, why = recovery_ratio(0.2, 0.2, 0.2, 1e-6)
    assert math.isnan(ratio) and "no OOD lost" in why


def test_recovery_window_ignores_rounding_above_zero():
    # the mean of -0.015, 0, +0.015 came out as 4.6e-18 in the null control study: not a gain
    rows = [
        {"metric": "d_ood", "init_step": t, "estimate": est, "lo": lo, "hi": 0.1}
        for t, est, lo in ((10, 4.6e-18, -0.015), (20, 0.02, 3e-18), (30, 0.05, 0.02))
    ]
    w = recovery_window(rows, tol=1e-6)
    assert w["window"] == [30] and w["positive_estimate"] == [20, 30]
    assert recovery_window(rows)["positive_estimate"] == [10, 20, 30]  # tol 0: the old, literal reading


def test_missing_rl_runs_are_reported_not_fatal(tmp_path):
    study = read_study(make_study(tmp_path, skip={(60, 2), (100, 0)}))
    assert {(m["init"], m["seed"], m["problem"]) for m in study.missing} == {
        ("sft-step=000060", 2, "RL run missing"),
        ("sft-step=000100", 0, "RL run missing"),
    }
    res = analyse(study, OPTS)
    assert row(res, "d_ood", "grpo", "sft-step=000060")["n"] == 2


def test_unfinished_runs_are_left_out_and_reported(tmp_path):
    root = make_study(tmp_path)
    (root / "grpo/tiny/gp/sft-step=000030/seed=1/DONE").unlink()
    study = read_study(root)
    assert [(m["init"], m["seed"]) for m in study.missing if "DONE" in m["problem"]] == [("sft-step=000030", 1)]
    assert row(analyse(study, OPTS), "d_ood", "grpo", "sft-step=000030")["n"] == 2


def test_non_finite_metrics_are_reported_and_skipped(tmp_path):
    study = read_study(make_study(tmp_path, nan={(1, 40)}))
    # the helper's error rate 1 - nan is nan too: both are reported
    assert sorted((n["step"], n["metric"]) for n in study.non_finite) == [
        (40, "eval/ood/err/illegal_formula"),
        (40, "eval/ood/success"),
    ]
    assert {n["run"] for n in study.non_finite} == {"sft/tiny/gp/base/seed=1"}
    res = analyse(study, OPTS)
    at40 = next(c for c in res.curves if c["metric"] == "eval/ood/success" and c["step"] == 40)
    assert at40["n"] == 2 and math.isfinite(at40["mean"])
    assert row(res, "ood_peak_step")["estimate"] == 20


def test_one_seed_marks_cis_unavailable(tmp_path):
    res = analyse(read_study(make_study(tmp_path, seeds=(0,))), OPTS)
    assert res.summary and all(math.isnan(r["lo"]) for r in res.summary)
    assert all("CI unavailable" in r["note"] for r in res.summary)
    assert res.windows[0]["window"] == [] and res.windows[0]["inits_without_ci"] == [10, 30, 60, 100]
    assert any("one seed" in n for n in res.notes)
    assert all(c["note"].startswith("one seed") for c in res.correlations if math.isfinite(c["lo"]))


def test_no_spectral_data_reports_rotation_unavailable(tmp_path):
    res = analyse(read_study(make_study(tmp_path, spectral=False)), OPTS)
    assert not res.correlations and any("rotation↔OOD unavailable" in n for n in res.notes)


def test_stage_filter_and_missing_study(tmp_path):
    root = make_study(tmp_path)
    assert read_study(root, stages=["ppo"]).rl_stages() == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_study(tmp_path / "nope")


def test_mean_curve_ci_brackets_the_mean(full):
    _, res = full
    ood = [c for c in res.curves if c["metric"] == "eval/ood/success"]
    assert [c["step"] for c in ood] == STEPS
    assert all(c["lo"] <= c["mean"] <= c["hi"] for c in ood)
    assert np.allclose([c["mean"] for c in ood], OOD_CURVE)


def test_analyze_config_keeps_the_experiment_and_checks_fields():
    import sweeps.analysis.config  # noqa: F401  (registers analyze_schema)
    from sweeps.schema import ConfigError, validate
    from tests.conftest import compose

    cfg = compose(["experiment=tiny_smoke"], config_name="analyze")
    validate(cfg)
    assert cfg.study == "tiny_smoke" and cfg.eval.size == 8 and cfg.analysis.n_resamples == 9999
    for override, message in (
        ("analysis.confidence=1.5", "analysis.confidence"),
        ("analysis.stages=[sft]", "RL stages only"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate(compose([override], config_name="analyze"))


# --- the cross-fitted OOD drop ----------------------------------------------------------------------


def _episodes(run, step, successes):
    d = run / "ckpt" / f"step={step:06d}"
    d.mkdir(parents=True)
    (d / "episodes_ood.jsonl").write_text(
        "".join(json.dumps({"item": i, "success": bool(s)}) + "\n" for i, s in enumerate(successes))
    )


def test_crossfit_drop_picks_the_peak_on_one_half_and_measures_on_the_other(tmp_path):
    from sweeps.analysis.curves import crossfit_drop

    # items 0..3; even items (0, 2) and odd items (1, 3)
    _episodes(tmp_path, 0, [0, 0, 0, 0])
    _episodes(tmp_path, 10, [1, 0, 1, 0])  # even: 1.0, odd: 0.0
    _episodes(tmp_path, 20, [0, 1, 0, 1])  # even: 0.0, odd: 1.0
    _episodes(tmp_path, 30, [0, 0, 1, 1])  # end: even 0.5, odd 0.5
    # pick on even -> step 10, measured on odd: 0.0 - 0.5 = -0.5; pick on odd -> step 20,
    # measured on even: 0.0 - 0.5 = -0.5. The naive max - end would be 1.0 - 0.5 = +0.5 on
    # either half: noise alone made that "decline".
    assert crossfit_drop(tmp_path) == pytest.approx(-0.5)


def test_crossfit_drop_of_a_real_decline_and_of_too_few_checkpoints(tmp_path):
    from sweeps.analysis.curves import crossfit_drop

    _episodes(tmp_path, 0, [1, 0, 0, 1])  # even 0.5, odd 0.5
    _episodes(tmp_path, 10, [1, 1, 1, 1])  # the peak on both halves
    _episodes(tmp_path, 20, [0, 0, 1, 0])  # end: even 0.5, odd 0.0
    assert crossfit_drop(tmp_path) == pytest.approx(((1.0 - 0.0) + (1.0 - 0.5)) / 2)
    single = tmp_path / "one"
    _episodes(single, 5, [1, 0])
    assert math.isnan(crossfit_drop(single))
