"""Wall time of a whole study end to end, then of an immediate re-run (Step 7, item 5).

Runs the given command (default: the README's demo study,
``sweeps-study experiment=tiny_demo hydra/launcher=local``) in a fresh output directory
(``paths.output_dir=<dir>`` is appended), times it, then runs the identical command again: every
job of the finished study must find its ``DONE`` and skip, so the re-run measures the driver's
fixed cost (composing the configs, the launcher, MLflow set-up). Prints a table with both
wall times, the number of ``DONE`` run directories and whether the re-run changed any
``metrics.jsonl`` (it must not). Goals on 2 cores: <= 15 min and <= 15 s.

    .venv/bin/python bench/study.py                                    # the demo study
    .venv/bin/python bench/study.py --tiny                             # experiment=tiny_smoke (minutes)
    .venv/bin/python bench/study.py -- sweeps-study experiment=X hydra/launcher=local   # any command
    .venv/bin/python bench/study.py --output-dir /tmp/s -- ...         # keep the outputs

The first word of the command is looked up next to this Python (the venv's ``bin/``) before
``PATH``. The command's own output goes to ``<output dir>/bench_study_run{1,2}.log``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

DEFAULT = ["sweeps-study", "experiment=tiny_demo", "hydra/launcher=local"]
TINY = ["sweeps-study", "experiment=tiny_smoke", "hydra/launcher=local"]


def resolve(cmd: list[str]) -> list[str]:
    local = Path(sys.executable).parent / cmd[0]
    if local.exists():
        return [str(local), *cmd[1:]]
    found = shutil.which(cmd[0])
    return [found or cmd[0], *cmd[1:]]


def snapshot(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in out.rglob("metrics.jsonl")}


def run(cmd: list[str], log: Path, timeout: float) -> tuple[float, int]:
    t = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
    return time.perf_counter() - t, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="experiment=tiny_smoke (the smoke test)")
    ap.add_argument("--output-dir", default=None, help="where the study writes (default: a fresh temp dir, removed)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the study command (after --)")
    args = ap.parse_args()
    cmd = [c for c in args.command if c != "--"] or (TINY if args.tiny else DEFAULT)
    keep = args.output_dir is not None
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="bench_study_")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    full = resolve(cmd) + [f"paths.output_dir={out}"]
    print(f"# study bench ({'tiny' if args.tiny else 'full'})")
    print(machine_line())
    print(f"command: {' '.join(cmd)} paths.output_dir={out}\n")
    try:
        first, rc1 = run(full, out / "bench_study_run1.log", args.timeout)
        done1, before = len(list(out.rglob("DONE"))), snapshot(out)
        second, rc2 = run(full, out / "bench_study_run2.log", args.timeout)
        done2, unchanged = len(list(out.rglob("DONE"))), snapshot(out) == before
        print("| run | wall s | exit code | DONE run dirs | goal (2 cores) |")
        print("|---|---|---|---|---|")
        print(f"| end to end | {first:.1f} | {rc1} | {done1} | <= 900 s |")
        print(f"| immediate re-run (all skips) | {second:.1f} | {rc2} | {done2} | <= 15 s |")
        print(f"\nre-run left every metrics.jsonl untouched: {unchanged}; at the end: {machine_line().split(', ')[-1]}")
        if rc1 or rc2:
            log = out / ("bench_study_run1.log" if rc1 else "bench_study_run2.log")
            print(
                f"a run failed; the tail of {log}:\n" + "\n".join(log.read_text().splitlines()[-30:]), file=sys.stderr
            )
            sys.exit(1)
    finally:
        if not keep and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
