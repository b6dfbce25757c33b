"""The positive control's check: does ``sweeps-analyze`` find what :mod:`control_plant` planted?

:func:`check` compares the analysis's tables (per-seed SFT rows, the summary with CIs, the
recovery windows) with the study's ``planted.json``; :func:`check_study` reads them from disk.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sweeps.runs import layout


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _window(v: Any) -> list[int]:
    return [int(x) for x in (json.loads(v) if isinstance(v, str) else v)]


def check(truth: dict[str, Any], sft_seeds: list[dict], summary: list[dict], windows: list[dict]) -> list[str]:
    """Where the analysis (rows of ``sft_seeds``, ``summary``, ``windows``, as ``curves.Results``
    holds them or as their CSV files) misses the planted ``truth``; empty when it finds it all."""
    bad: list[str] = []
    peak = truth["peak_step"]
    seeds = {int(r["seed"]): r for r in sft_seeds}
    if sorted(seeds) != sorted(truth["seeds"]):
        bad.append(f"SFT seeds {sorted(seeds)}, planted {truth['seeds']}")
    for seed, r in sorted(seeds.items()):
        found = None if r["peak_step"] in (None, "") else int(_f(r["peak_step"]))
        planted = truth["peak_steps"].get(str(seed))
        if found != planted:
            bad.append(f"seed {seed}: OOD peak step {found}, planted {planted} ({r.get('no_peak') or 'a peak'})")
    rows = {(r["stage"], r.get("init") or "", r["metric"]): r for r in summary}

    def covers(key: tuple[str, str, str], value: float, what: str, width: bool = True) -> None:
        r = rows.get(key)
        if r is None:
            bad.append(f"{what}: no {key[2]} row")
            return
        est, lo, hi = _f(r["estimate"]), _f(r["lo"]), _f(r["hi"])
        unavailable = not width and math.isnan(lo) and math.isnan(hi)  # BCa on identical seeds: no CI, by design
        why = (
            "the estimate is not the planted value"
            if not math.isclose(est, value, abs_tol=1e-9)
            else ""
            if unavailable
            else "the CI misses it"
            if not (lo <= value + 1e-9 and value - 1e-9 <= hi)
            else "a CI of zero width"
            if width and not lo < hi
            else ""
        )
        if why:
            bad.append(f"{what}: {key[2]} = {est:.4g} [{lo:.4g}, {hi:.4g}], planted {value:.4g}: {why}")

    step = rows.get(("sft", "", "ood_peak_step"))
    found = _f(step["estimate"]) if step else math.nan
    if peak is None and math.isfinite(found):
        bad.append(f"across seeds: OOD peak step {found}, planted none")
    if peak is not None:
        covers(("sft", "", "ood_peak_step"), peak, "across seeds", width=False)  # zero width when every seed agrees
        covers(("sft", "", "ood_peak_value"), truth["peak_value"], "SFT")
        covers(("sft", "", "id_at_peak"), truth["id_at_peak"], "SFT")
    covers(("sft", "", "ood_max_value"), truth["max_value"], "SFT")
    covers(("sft", "", "ood_end_value"), truth["end_value"], "SFT")
    covers(("sft", "", "id_end_value"), truth["id_end"], "SFT")
    covers(
        ("sft", "", "ood_drop_crossfit"), truth["max_value"] - truth["end_value"], "SFT", width=False
    )  # same in every seed
    stage = truth["stage"]
    for t, d in truth["d_ood"].items():
        init = layout.sft_init(int(t))
        covers((stage, init, "d_ood"), d, f"{stage} from {t}")
        covers((stage, init, "d_id"), truth["d_id"][t], f"{stage} from {t}")
        if t in truth["recovery_ratio"]:
            covers((stage, init, "recovery_ratio"), truth["recovery_ratio"][t], f"{stage} from {t}")
    win = [w for w in windows if w["stage"] == stage]
    if len(win) != 1 or _window(win[0]["window"]) != truth["window"]:
        bad.append(f"{stage}: recovery window {[_window(w['window']) for w in win]}, planted {truth['window']}")
    return bad


def check_study(study_dir: str | Path) -> list[str]:
    """:func:`check` on the tables ``sweeps-analyze`` wrote into ``<study_dir>/analysis``."""
    import csv

    study_dir = Path(study_dir)
    truth = json.loads((study_dir / "planted.json").read_text())
    tables = {}
    for name in ("sft_seeds", "summary", "windows"):
        path = study_dir / "analysis" / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run sweeps-analyze study={study_dir} first")
        with open(path, newline="") as fh:
            tables[name] = list(csv.DictReader(fh))
    return check(truth, tables["sft_seeds"], tables["summary"], tables["windows"])
