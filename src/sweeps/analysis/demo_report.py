"""The demo study's result as a README section (``python -m sweeps.cli.demo_report outputs/tiny_demo``).

Reads the analysis tables (``<study>/analysis/*.csv``, written by ``sweeps-analyze``), copies
the study figure to ``docs/<study>.png`` and rewrites the README section between
``<!-- <study>:begin -->`` and ``<!-- <study>:end -->`` with a table of the measured quantities
and their bootstrap CIs over seeds. Nothing in that section is typed by hand: ``make demo``
regenerates it. Also writes ``<study>/result.md`` (the same section).
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

from sweeps.runs import atomic_write_text


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _f(v: str | float | None) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def ci(row: dict[str, str] | None, digits: int = 3) -> str:
    if not row:
        return "n/a"
    est, lo, hi = _f(row.get("estimate")), _f(row.get("lo")), _f(row.get("hi"))
    if not math.isfinite(est):
        return "n/a"
    text = f"{est:.{digits}f}"
    if math.isfinite(lo) and math.isfinite(hi):
        verdict = " (CI > 0)" if lo > 0 else " (CI < 0)" if hi < 0 else ""
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]{verdict}"
    return text


def section(study_dir: Path, figure: str | None) -> str:
    a = study_dir / "analysis"
    summary, windows = _rows(a / "summary.csv"), _rows(a / "windows.csv")
    corr, tests = _rows(a / "correlations.csv"), _rows(a / "peak_tests.csv")
    if not summary:
        raise SystemExit(f"error: {a}/summary.csv is missing: run sweeps-analyze study={study_dir.name} first")
    sft = {r["metric"]: r for r in summary if r["stage"] == "sft"}
    n = sft.get("ood_end_value", {}).get("n", "?")
    lines = []
    if figure:
        lines += [f"![{study_dir.name}: SFT curves and RL from checkpoints]({figure})", ""]
    lines += [
        f"Measured quantities: mean over {n} seeds with a 95% bootstrap CI in brackets "
        "(`sweeps-analyze`, percentile bootstrap over seeds; greedy success on the frozen 200-item "
        "ID and OOD sets).",
        "",
        "| quantity | estimate [95% CI] |",
        "|---|---|",
        f"| SFT: OOD peak step | {ci(sft.get('ood_peak_step'), 0)} |",
        f"| SFT: OOD at the peak | {ci(sft.get('ood_peak_value'))} |",
        f"| SFT: OOD at the end | {ci(sft.get('ood_end_value'))} |",
        f"| SFT: OOD max − end (biased up by noise) | {ci(sft.get('ood_max_minus_end'))} |",
        f"| SFT: OOD peak − end, cross-fitted (unbiased) | {ci(sft.get('ood_drop_crossfit'))} |",
        f"| SFT: ID at the end | {ci(sft.get('id_end_value'))} |",
    ]
    for stage in sorted({r["stage"] for r in summary if r["stage"] != "sft"}):
        rl = sorted((r for r in summary if r["stage"] == stage), key=lambda r: _f(r.get("init_step")))
        for init in dict.fromkeys(r["init_step"] for r in rl):
            by = {r["metric"]: r for r in rl if r["init_step"] == init}
            lines.append(
                f"| {stage} from SFT step {int(_f(init))}: ΔOOD / ΔID | {ci(by.get('d_ood'))} / {ci(by.get('d_id'))} |"
            )
        win = next((w for w in windows if w.get("stage") == stage), None)
        if win:
            inside = win.get("window") or "[]"
            lines.append(f"| {stage}: recovery window (inits with ΔOOD CI > 0) | {inside} |")
        test = next((t for t in tests if t.get("stage") == stage), None)
        if test:
            lines.append(f"| {stage}: best RL end − SFT OOD max | {ci(test)} |")
    for r in corr:
        if r.get("correlation") == "spearman":
            role = "control" if r.get("role") == "control" else "rotation"
            lines.append(
                f"| Spearman({r['scalar']} vs OOD drop), {role}, ref {r.get('reference') or '-'} | {ci(r, 2)} |"
            )
    return "\n".join(lines) + "\n"


def replace_section(readme: Path, name: str, body: str) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"error: {readme} has no '{begin}' ... '{end}' markers: add them where the result goes")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{begin}\n{body}{end}{tail}")


def publish_figure(study_dir: Path, docs: Path, readme: Path, pattern: str) -> str | None:
    """Copy the study's first figure matching ``pattern`` to ``<docs>/<study>.png``; its path
    relative to the README, or None when the analysis drew no such figure."""
    figs = sorted((study_dir / "analysis" / "figures").glob(pattern))
    if not figs:
        return None
    dest = docs / f"{study_dir.name}.png"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(figs[0], dest)
    return str(dest.resolve().relative_to(readme.resolve().parent))
