"""The analysis's positive control (``sweeps.analysis.synthetic``), in process.

The control studies plant (see the module doc): the OOD peak at step 40 in seeds 0 and 1 and at 30
in seed 2 (0.40 in each), the end at 0.18, ΔOOD -0.06, -0.04 | +0.04, +0.10, +0.10 | +0.005, 0 for GRPO from 10, 40 | 60, 80, 100 |
150, 200 (window {60, 80, 100}); the null study has no peak and no window. Here the analysis must
find exactly that, and each deliberately broken analysis, and a moved plant, must be caught.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from sweeps.analysis import curves
from sweeps.analysis.curves import Options, analyse
from sweeps.analysis.synthetic import NULL, PEAK, check, seed_values, write_study
from sweeps.analysis.tables import ID, OOD, Study, read_study

OPTS = Options(n_resamples=999)
RUN = "sft/tiny_base/general_points_tiny/base/seed={}"
PLANTED_D_OOD = {10: -0.06, 40: -0.04, 60: 0.04, 80: 0.10, 100: 0.10, 150: 0.005, 200: 0.0}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    out = tmp_path_factory.mktemp("control")
    return {p.name: write_study(p, out) for p in (PEAK, NULL)}


def results(root):
    return analyse(read_study(root), OPTS)


def row(res, metric, stage="sft", init=""):
    return next(r for r in res.summary if r["metric"] == metric and r["stage"] == stage and r.get("init", "") == init)


def findings(res, truth):
    return check(truth, res.sft_seeds, res.summary, res.windows)


# --- the files are the jobs' own ------------------------------------------------------------------
def test_run_directories_are_what_the_jobs_write(roots):
    from omegaconf import OmegaConf

    from sweeps.analysis.roles import resolve
    from sweeps.launching import job_signature
    from sweeps.runs import Run

    root = roots["control_peak"]
    run = Run(root / RUN.format(1))
    sig = job_signature(OmegaConf.load(run.path / "config.yaml"))
    assert run.stored_signature() == sig and run.claim(sig, "") == "skip"  # sweeps-train would skip it as DONE
    assert [s for s, _ in run.checkpoints()] == [0, 10, 20, 30, 40, 60, 80, 100, 150, 200]
    assert json.loads((run.path / "DONE").read_text())["checkpoints"] == [0, 10, 20, 30, 40, 60, 80, 100, 150, 200]
    # the role an RL job resolves from this run (SFT_MaxOOD) is the planted peak
    assert resolve("ood_peak", run.path) == 40 and resolve("sft_end", run.path) == 200
    assert resolve("ood_peak", root / RUN.format(2)) == 30
    evals = {r["step"]: r for r in run.read_metrics() if OOD in r}
    solved = {}
    for step, ckpt in run.checkpoints():
        assert json.loads((ckpt / "eval.json").read_text()) == evals[step]
        for split in ("id", "ood"):
            eps = [json.loads(line) for line in (ckpt / f"episodes_{split}.jsonl").read_text().splitlines()]
            assert [e["item"] for e in eps] == list(range(200))
            assert sum(e["success"] for e in eps) / 200 == evals[step][f"eval/{split}/success"]
            solved[(step, split)] = {e["item"] for e in eps if e["success"]}
    # a checkpoint with a higher rate solves a superset of the items (the items are ranked once)
    assert solved[(30, "ood")] < solved[(40, "ood")] and solved[(200, "ood")] < solved[(60, "ood")]
    assert solved[(0, "id")] < solved[(200, "id")]
    rl = Run(root / "grpo/tiny_base/general_points_tiny/sft-step=000080/seed=1")
    rl_evals = {r["step"]: r for r in rl.read_metrics() if OOD in r}
    assert sorted(rl_evals) == [0, 20, 40] and rl_evals[0] == {**evals[80], "step": 0}  # RL's step 0: the init weights
    cfg = OmegaConf.load(rl.path / "config.yaml")
    assert (cfg.algo.name, cfg.init.step, cfg.seed, cfg.trainer.max_steps) == ("grpo", 80, 1, 40)
    assert sorted(p.name.split("-")[1] for p in (root / "evalsets").iterdir()) == ["id", "ood"]


def test_seed_values_are_the_plant_shifted_by_zero_sum_offsets():
    vals = seed_values(PEAK)
    ood = np.array([v.ood for v in vals.values()])  # [seeds, steps]
    mean = list(PEAK.ood)
    mean[3], mean[4] = (0.36 + 0.36 + 0.40) / 3, (0.40 + 0.40 + 0.36) / 3  # seed 2: steps 30 and 40 swapped
    assert np.allclose(ood.mean(0), mean) and [PEAK.steps[i] for i in ood.argmax(1)] == [40, 40, 30]
    assert sorted(np.round(ood.max(1), 3)) == [0.39, 0.4, 0.41]
    d = np.array([[v.rl_ood[t][-1] - v.rl_ood[t][0] for t in PLANTED_D_OOD] for v in vals.values()])  # [seeds, inits]
    assert np.allclose(d.mean(0), list(PLANTED_D_OOD.values()))
    assert np.allclose(np.sort(d[:, 2]), [0.025, 0.04, 0.055])  # init 60: every seed above 0


# --- the analysis finds the plant -----------------------------------------------------------------
def test_the_planted_peak_and_window_are_found(roots):
    res = results(roots["control_peak"])
    assert [(r["seed"], r["peak_step"]) for r in res.sft_seeds] == [(0, 40), (1, 40), (2, 30)]
    step = row(res, "ood_peak_step")
    assert (step["estimate"], step["lo"], step["hi"]) == (pytest.approx(110 / 3), 30, 40)
    # ID at each seed's peak: 0.62, 0.62 and 0.55 (step 30), plus zero-sum offsets
    for metric, planted in (
        ("ood_peak_value", 0.40),
        ("ood_end_value", 0.18),
        ("id_at_peak", (0.62 + 0.62 + 0.55) / 3),
    ):
        r = row(res, metric)
        assert r["estimate"] == pytest.approx(planted) and r["lo"] < planted < r["hi"], metric
    assert row(res, "ood_drop_crossfit")["estimate"] == pytest.approx(0.22)
    for t, d in PLANTED_D_OOD.items():
        r = row(res, "d_ood", "grpo", f"sft-step={t:06d}")
        assert r["estimate"] == pytest.approx(d, abs=1e-12) and r["lo"] < d < r["hi"] and r["n"] == 3, t
    # recovery ratio at 80: 0.10 / (0.40 - 0.28)
    assert row(res, "recovery_ratio", "grpo", "sft-step=000080")["estimate"] == pytest.approx(0.10 / 0.12)
    (w,) = res.windows
    assert w["window"] == [60, 80, 100] and (w["lo_step"], w["hi_step"], w["contiguous"]) == (60, 100, True)
    assert w["positive_estimate"] == [60, 80, 100, 150]  # 150: +0.005 on average, not above 0 in every seed
    (t,) = res.tests
    assert t["never_surpasses"] and t["hi"] < 0
    assert findings(res, PEAK.truth()) == []


def test_the_null_study_has_no_peak_and_no_window(roots):
    res = results(roots["control_null"])
    assert all(r["peak_step"] is None and "no decline" in r["no_peak"] for r in res.sft_seeds)
    assert math.isnan(row(res, "ood_peak_step")["estimate"])
    (w,) = res.windows
    assert w["window"] == [] and w["lo_step"] is None
    # every mean ΔOOD is 0 up to rounding (seeds -0.015, 0, +0.015): none counts as a gain
    assert w["positive_estimate"] == []
    assert findings(res, NULL.truth()) == []


# --- a broken analysis is caught ------------------------------------------------------------------
def _wrong_split(mp):
    mp.setattr(curves, "OOD", ID)  # peaks and deltas read from the ID curve


def _peak_of_the_mean_curve(mp):
    real = Study.curve

    def mean(self, key, metric):  # every seed's peak read off the mean OOD curve
        if key.stage != "sft" or metric != OOD:
            return real(self, key, metric)
        runs = [real(self, k, metric) for k in self.keys("sft")]
        return runs[0][0], list(np.mean([v for _, v in runs], axis=0))

    mp.setattr(Study, "curve", mean)


def _window_from_estimates(mp):
    real = curves.recovery_window

    def by_estimate(summary, tol=0.0):
        w = real(summary, tol)
        return {**w, "window": w["positive_estimate"]}

    mp.setattr(curves, "recovery_window", by_estimate)


def _rl_end_is_best(mp):
    real = Study.curve

    def up_to_best(self, key, metric):
        steps, vals = real(self, key, metric)
        if key.stage == "sft" or not vals:
            return steps, vals
        i = int(np.argmax(vals))
        return steps[: i + 1], vals[: i + 1]

    mp.setattr(Study, "curve", up_to_best)


def _delta_from_sft_end(mp):
    def at_end(study, sft, rl, metric):
        series = study.metrics[sft][metric]
        return series[max(series)], "sft end"

    mp.setattr(curves, "_at_init", at_end)


def _degenerate_ci(mp):
    mp.setattr(Options, "ci", lambda self, values: (float(np.mean(values)),) * 3 if len(values) else (math.nan,) * 3)


def _max_is_a_peak(mp):
    real = curves.find_peak

    def any_max(steps, values, tol):  # no "rises and then falls" test: every max is a peak
        p = real(steps, values, tol)
        return {**p, "peak_step": p["max_step"], "peak_value": p["max_value"], "no_peak": ""}

    mp.setattr(curves, "find_peak", any_max)


@pytest.mark.parametrize(
    "breaks,study,caught",
    [
        (_wrong_split, "control_peak", "OOD peak step"),
        (_peak_of_the_mean_curve, "control_peak", "seed 2: OOD peak step 40, planted 30"),
        (_window_from_estimates, "control_peak", "recovery window"),
        (_rl_end_is_best, "control_peak", "d_ood"),
        (_delta_from_sft_end, "control_peak", "recovery window"),
        (_degenerate_ci, "control_peak", "recovery window"),
        (_max_is_a_peak, "control_null", "OOD peak step"),
    ],
)
def test_a_broken_analysis_fails_the_control(roots, monkeypatch, breaks, study, caught):
    truth = (PEAK if study == "control_peak" else NULL).truth()
    breaks(monkeypatch)
    bad = findings(results(roots[study]), truth)
    assert any(caught in b for b in bad), bad


def test_a_moved_plant_is_found_and_the_old_answer_fails(tmp_path):
    moved = dataclasses.replace(
        PEAK,
        name="control_moved",
        ood=(0.10, 0.14, 0.18, 0.22, 0.26, 0.30, 0.27, 0.24, 0.20, 0.18),
        d_ood={10: -0.06, 40: -0.04, 60: -0.02, 80: 0.06, 100: 0.08, 150: 0.10, 200: 0.005},
        peak=60,
        window=(80, 100, 150),
        seed_peaks={},
    )
    res = results(write_study(moved, tmp_path))
    assert [r["peak_step"] for r in res.sft_seeds] == [60, 60, 60] and res.windows[0]["window"] == [80, 100, 150]
    assert findings(res, moved.truth()) == []
    bad = findings(res, PEAK.truth())
    assert any("OOD peak step 60, planted 40" in b for b in bad) and any("recovery window" in b for b in bad)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"peak": 30}, "does not peak at 30"),
        ({"window": (80, 100)}, "init 60 is out of the window"),
        ({"window": (60, 80, 100, 150)}, "init 150 is in the window"),
        ({"d_id": 0.0333}, "not a multiple of 1/200"),
        ({"d_ood": {**PLANTED_D_OOD, 50: 0.1}}, "RL inits must be SFT checkpoints"),
    ],
)
def test_a_plant_that_contradicts_its_answer_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        seed_values(dataclasses.replace(PEAK, **change))


def test_the_truth_file(roots):
    truth = json.loads((roots["control_peak"] / "planted.json").read_text())
    assert truth == json.loads(json.dumps(PEAK.truth()))
    assert truth["peak_steps"] == {"0": 40, "1": 40, "2": 30} and truth["peak_step"] == pytest.approx(110 / 3)
    assert (truth["window"], truth["d_ood"]["80"]) == ([60, 80, 100], 0.10)
    # ratio at 40: only seed 2 lost OOD by then (its peak is at 30): one seed, no CI, not checked
    assert truth["recovery_ratio"]["150"] == pytest.approx(0.005 / 0.20) and "40" not in truth["recovery_ratio"]
