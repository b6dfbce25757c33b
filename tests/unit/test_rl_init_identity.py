"""An RL job named by a role (``init.role=ood_peak``) is the job from the step the role resolves
to: one directory and one signature, so a study whose role lands on one of its listed
``init_steps`` finds that run DONE instead of refusing the directory (found by the Step 10
pilots: seed 0's OOD peak was step 300, also listed)."""

from __future__ import annotations

from omegaconf import OmegaConf, open_dict

from sweeps.analysis.synthetic import PEAK, compose, write_study
from sweeps.jobs.rl import semantic_config
from sweeps.runs import signature


def test_a_role_and_the_step_it_resolves_to_are_one_job(tmp_path):
    write_study(PEAK, tmp_path)  # seed 0: OOD peaks at step 40, the last checkpoint is 200
    cfg = compose(PEAK, tmp_path, rl=True)
    assert cfg.seed == 0

    def sig(step, role):
        with open_dict(cfg):
            cfg.init.step, cfg.init.role = step, role
        return signature(semantic_config(cfg, OmegaConf.to_container(cfg, resolve=True)))

    assert sig(None, "ood_peak") == sig(40, None)
    assert sig(None, "sft_end") == sig(200, None)
    assert sig(None, "ood_peak") != sig(60, None)
    assert sig(None, "ood_peak") != sig(None, "sft_end")
    with open_dict(cfg):
        cfg.init.step, cfg.init.role = None, "ood_peak"
    raw = OmegaConf.to_container(cfg, resolve=True)
    assert semantic_config(cfg, raw)["init"]["step"] == 40 and raw["init"]["role"] == "ood_peak"  # input untouched
