"""``python -m sweeps.summary <study dir>``: a table of ID/OOD success per SFT checkpoint.

Reads the study's run directories (never the trainer) and prints, per checkpoint step, the
mean success over seeds with the min-max range, and writes ``<study>/summary.md``. The full
statistical analysis (bootstrap CIs, peaks, recovery windows) is ``sweeps-analyze`` (Step 5).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from sweeps.runs import atomic_write_text, iter_metrics, layout


def collect(study: Path) -> dict[tuple[str, str, str], dict[int, dict[str, list[float]]]]:
    """{(stage, model, task): {step: {metric: [value per seed]}}} from every metrics.jsonl."""
    table: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for key, path in layout.runs(study):
        stage, model, task = key.stage, key.model, key.task
        for rec in iter_metrics(path / layout.METRICS):
            for key in ("eval/id/success", "eval/ood/success"):
                if key in rec:
                    table[(stage, model, task)][rec["step"]][key].append(rec[key])
    return table


def render(table: dict) -> str:
    lines = []
    for (stage, model, task), steps in sorted(table.items()):
        lines += [
            f"### {stage} / {model} / {task}",
            "",
            "| step | seeds | ID success (mean, min-max) | OOD success (mean, min-max) |",
            "|---|---|---|---|",
        ]
        for step in sorted(steps):
            cells = []
            for key in ("eval/id/success", "eval/ood/success"):
                v = steps[step][key]
                cells.append(f"{sum(v) / len(v):.3f} ({min(v):.3f}-{max(v):.3f})" if v else "-")
            lines.append(f"| {step} | {len(steps[step]['eval/id/success'])} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        raise SystemExit("usage: python -m sweeps.summary <outputs/STUDY> (a study directory that exists)")
    study = Path(argv[0])
    text = render(collect(study))
    if not text:
        raise SystemExit(f"error: no run directories with metrics under {study}")
    atomic_write_text(study / "summary.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
