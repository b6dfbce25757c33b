"""``python -m sweeps.cli.ablation_report outputs/rotation_ablation``: the rotation ablation's result
in the README and ``docs/``.

Reads the analysis tables (``<study>/analysis/ablation.csv`` and ``selection.csv``, written by
``sweeps-analyze``), copies the ablation figure to ``docs/<study>.png``, writes
``docs/<study>.md`` (the same tables) and rewrites the README section
between ``<!-- <study>:begin -->`` and ``<!-- <study>:end -->`` with the summary tables
(:mod:`sweeps.analysis.ablation_report`). Nothing in those tables is typed by hand.
"""

from __future__ import annotations

from sweeps.analysis.ablation_report import docs_page, section
from sweeps.analysis.demo_report import publish_figure, replace_section
from sweeps.cli.demo_report import parse_args
from sweeps.runs import atomic_write_text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, __doc__.splitlines()[0])
    name = args.study_dir.name
    body = section(args.study_dir, publish_figure(args.study_dir, args.docs, args.readme, "ablation_*.png"))
    atomic_write_text(args.docs / f"{name}.md", docs_page(name, body))
    if args.readme.is_file():
        replace_section(args.readme, name, body)
    print(body)


if __name__ == "__main__":
    main()
