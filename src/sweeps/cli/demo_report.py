"""``python -m sweeps.cli.demo_report outputs/tiny_demo``: the demo study's result, in the README.

Reads the analysis tables (``<study>/analysis/*.csv``, written by ``sweeps-analyze``), copies
the study figure to ``docs/<study>.png`` and rewrites the README section between
``<!-- <study>:begin -->`` and ``<!-- <study>:end -->`` with a table of the measured quantities
and their bootstrap CIs over seeds (:mod:`sweeps.analysis.demo_report`). Nothing in that section
is typed by hand: ``make demo`` regenerates it. Also writes ``<study>/result.md`` (the same section).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sweeps.analysis.demo_report import publish_figure, replace_section, section
from sweeps.runs import atomic_write_text

REPO = Path(__file__).resolve().parents[3]


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The report scripts' command line: the study directory, where the README and docs/ are."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--docs", type=Path, default=REPO / "docs")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, __doc__.splitlines()[0])
    name = args.study_dir.name
    body = section(args.study_dir, publish_figure(args.study_dir, args.docs, args.readme, "study_*.png"))
    atomic_write_text(args.study_dir / "result.md", body)
    if args.readme.is_file():
        replace_section(args.readme, name, body)
    print(body)


if __name__ == "__main__":
    main()
