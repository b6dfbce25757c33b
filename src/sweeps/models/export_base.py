"""Copy the last checkpoint of each finished pretraining run into ``assets/tiny_base/``.

    python -m sweeps.models.export_base outputs/tiny_pretrain [--dest assets/tiny_base]

``<study>/pretrain/<model>/<task>/scratch/seed=<N>/`` becomes ``<dest>/base<N>/``: the Hugging
Face checkpoint (safetensors weights, config, tokenizer) plus ``provenance.json`` with the run's
resolved config, its final ID/OOD evaluation and the command that reproduces it, and the run's
``metrics.jsonl`` as ``pretrain_metrics.jsonl`` (the loss curve a replay test compares with). Each base is
written to a temporary directory and renamed into place, so an interrupted export never leaves
half a base behind. Runs without ``DONE`` are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from sweeps.models.checkpoint import check_checkpoint_dir
from sweeps.runs import Run, atomic_dir, layout


def export(study_dir: Path, dest: Path) -> list[Path]:
    runs = layout.runs(study_dir, stage="pretrain", init=layout.SCRATCH)
    if not runs:
        raise SystemExit(
            f"error: {study_dir} holds no pretraining runs (pretrain/<model>/<task>/scratch/seed=N): "
            "run `sweeps-train -m experiment=tiny_pretrain seed=0,1,2` first"
        )
    written = []
    for key, path in runs:
        run = Run(path)
        if not run.done:
            print(f"skip {path}: not DONE (resume it by re-running the same command)")
            continue
        step, ckpt = run.checkpoints()[-1]
        check_checkpoint_dir(ckpt)
        seed = key.seed
        cfg = yaml.safe_load((path / "config.yaml").read_text())
        evals = [r for r in run.read_metrics() if "eval/id/success" in r and r["step"] == step]
        provenance = {
            "source_run": str(path),
            "step": step,
            "signature": (path / "signature").read_text().strip(),
            "command": f"sweeps-train -m hydra/launcher=local experiment={cfg['study']} seed={seed}",
            "eval": {k: v for k, v in (evals[-1] if evals else {}).items() if k.endswith(("/success", "/n"))},
            "config": cfg,
        }
        final = dest / f"base{seed}"
        with atomic_dir(final) as tmp:
            for f in ckpt.iterdir():
                if f.is_file() and f.name != "eval.json" and not f.name.startswith("episodes"):
                    shutil.copy2(f, tmp / f.name)
            (tmp / "provenance.json").write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
            shutil.copy2(path / "metrics.jsonl", tmp / "pretrain_metrics.jsonl")  # the loss curve, for replay tests
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
        written.append(final)
        print(f"{final}: step {step} of {path}")
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study_dir", type=Path, help="the pretraining study's directory, e.g. outputs/tiny_pretrain")
    ap.add_argument("--dest", type=Path, default=Path(__file__).resolve().parents[3] / "assets" / "tiny_base")
    args = ap.parse_args(argv)
    if not export(args.study_dir, args.dest):
        sys.exit("error: no finished pretraining run to export")


if __name__ == "__main__":
    main()
