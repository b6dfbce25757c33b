"""``sweeps-sync``: push run directories into MLflow, idempotently.

    sweeps-sync outputs/                     # every run dir below, into its own tracking URI
    sweeps-sync outputs/ --uri http://127.0.0.1:5000

A run directory is any folder with config.yaml and metrics.jsonl; sync pushes only the records its
MLflow run lacks, so running it twice changes nothing (:mod:`sweeps.tracking.sync`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sweeps.tracking.sync import find_runs, sync_run

log = logging.getLogger("sweeps.sync")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="an outputs/ folder, a study, or one run directory")
    parser.add_argument("--uri", default=None, help="tracking URI (default: each run's tracking.uri)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.root.exists():
        raise SystemExit(f"error: {args.root} does not exist")
    runs = find_runs(args.root)
    total, failed = 0, 0
    for r in runs:
        try:
            n = sync_run(r, args.uri)
        except (RuntimeError, ValueError) as err:  # one line a run, the others still sync
            failed += 1
            log.error("%s: %s", r, err)
            continue
        total += n
        log.info("%s: %d new records", r, n)
    log.info(
        "synced %d run(s), %d record(s)%s", len(runs) - failed, total, f"; {failed} run(s) failed" if failed else ""
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
