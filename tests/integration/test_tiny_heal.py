"""experiment=tiny_heal (Step 10) composes and runs end to end at smoke size (slow): SFT from the
shipped base with the OOD rule J, Q, K = 3, 7, 9, GRPO from an SFT checkpoint, and the analysis
report. The full-size run is `sweeps-study
experiment=tiny_heal hydra/launcher=local` (README, "Step 10: can RL heal OOD in the toy?")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).parent / "sweeps-study")
SMOKE = [
    "trainer.max_steps=6",
    "trainer.save_every=[3,6]",
    "trainer.batch_size=8",
    "eval.size=8",
    "plan.seeds=[0]",
    "plan.rl.init_steps=[6]",
    "tracking=none",
]


def test_tiny_heal_runs_sft_rl_and_analysis_at_smoke_size(tmp_path):
    res = subprocess.run(
        [EXE, "experiment=tiny_heal", "hydra/launcher=local", f"paths.output_dir={tmp_path}", *SMOKE],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    root = tmp_path / "tiny_heal"
    sft = root / "sft/tiny_base/general_points_tiny/base/seed=0"
    evals = [
        json.loads(line) for line in (sft / "metrics.jsonl").read_text().splitlines() if '"eval/ood/success"' in line
    ]
    assert [e["step"] for e in evals] == [0, 3, 6]
    # the OOD items hold a face card valued 3, 7 or 9: every OOD value is a pip value (1..10)
    items = [json.loads(line) for line in (sft / "ckpt/step=000000/episodes_ood.jsonl").read_text().splitlines()]
    assert len(items) == 8 and all(max(i["example"]["data"]["values"]) <= 10 for i in items)
    assert all({"J", "Q", "K"} & set(i["example"]["data"]["cards"]) for i in items)
    rl = [p.parent.parent.name for p in root.glob("grpo/tiny_base/general_points_tiny/*/seed=0/DONE")]
    assert rl == ["sft-step=000006"]
    assert (root / "analysis" / "summary.csv").is_file()
