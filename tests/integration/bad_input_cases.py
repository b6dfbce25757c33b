"""The case table of ``test_bad_inputs.py``: each bad config or input as a ``Case`` (the entry
point, its overrides, the words the one error line must hold, and what to do to a copy of the
finished tiny SFT run first), and the file surgery the cases use (truncated or garbled
safetensors, a misshapen header, pickle-only weights, torn JSON). Not a test module itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BASE = ["model=tiny", "tracking=none"]
SFT = [
    *BASE,
    "algo=sft",
    "task=determinant_small",
    "trainer=smoke",
    "trainer.max_steps=2",
    "trainer.save_every=1",
    "eval.size=2",
    "eval.splits=[id]",
    "study=bi",
]
RL = [
    *BASE,
    "algo=grpo",
    "algo.group_size=4",
    "task=determinant_small",
    "trainer=smoke",
    "eval.size=2",
    "eval.splits=[id]",
    "study=bi",
]
SFT_RUN = Path("bi/sft/tiny/determinant_small/base/seed=0")
RL_CKPT = "{tmp}/out/" + str(SFT_RUN / "ckpt" / "step=000002")  # the RL init (init.step=2), in the copy


# --- what a case does to the files before it runs ---------------------------------------------------------
def copy_out(tmp: Path, base: Path) -> Path:
    """The finished SFT output folder, copied (cases mutate it); returns the run directory."""
    shutil.copytree(base, tmp / "out")
    return tmp / "out" / SFT_RUN


def copy_ckpt(tmp: Path, base: Path) -> Path:
    """A good checkpoint directory at ``tmp/ckpt``."""
    return Path(shutil.copytree(base / SFT_RUN / "ckpt" / "step=000002", tmp / "ckpt"))


def rl_ckpt(tmp: Path, base: Path) -> Path:
    return copy_out(tmp, base) / "ckpt" / "step=000002"


def edit_json(path: Path, **changes) -> None:
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # an interrupted copy


def garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20:60] = b"\xff" * 40  # inside the JSON header, same length
    path.write_bytes(bytes(data))


def misshape_header(path: Path) -> None:
    """One tensor's shape changed, the header still valid JSON of the same length."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + n].replace(b"[128,384]", b"[128,385]", 1)
    assert len(header) == n and header != data[8 : 8 + n]
    path.write_bytes(data[:8] + header + data[8 + n :])


def pickle_only(ckpt: Path) -> None:
    import torch

    (ckpt / "model.safetensors").unlink()
    torch.save({"model.norm.weight": torch.ones(128)}, ckpt / "pytorch_model.bin")


def run_dir_with_torn(name: str, unfinished: bool = False) -> Callable[[Path, Path], None]:
    """The run with ``name`` (a file inside the run directory) cut mid-JSON; ``unfinished``:
    without DONE, so the re-run resumes."""

    def setup(tmp: Path, base: Path) -> None:
        run = copy_out(tmp, base)
        if unfinished:
            (run / "DONE").unlink()
        f = run / name
        f.write_text(f.read_text()[:7])

    return setup


# --- the cases ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    entry: str  # sweeps-* (a subprocess) or train / eval / plan (the entry point's function)
    args: list[str]  # Hydra overrides ({tmp} is the case's folder), or sweeps-sync's argv
    needles: list[str]  # each must be in the error line ({tmp} formatted)
    setup: Callable[[Path, Path], object] | None = None
    common: list[str] = field(default_factory=lambda: list(BASE))


def train_case(id: str, args: list[str], needles: list[str], **kw) -> Case:
    return Case(id, "train", ["trainer=smoke", *args], needles, **kw)


CASES = [
    # composition: Hydra's own errors through the real command line
    Case("unknown_top_level_key", "sweeps-train", ["studdy=x"], ["'studdy'", "did you mean study?"]),
    Case(
        "unknown_nested_key",
        "sweeps-train",
        ["trainer.max_stepz=3"],
        ["trainer.max_stepz", "did you mean trainer.max_steps?"],
    ),
    Case("unknown_deep_key", "sweeps-train", ["model.lora.rr=4"], ["model.lora.rr", "did you mean model.lora.r?"]),
    Case("wrong_type_str_for_int", "sweeps-train", ["trainer.max_steps=abc"], ["trainer.max_steps", "'abc'"]),
    Case("wrong_type_list_for_int", "sweeps-train", ["eval.size=[1]"], ["eval.size", "Integer"]),
    Case("unknown_group_option", "sweeps-train", ["model=nonexistent"], ["model/nonexistent", "tiny_base"]),
    Case("unparsable_override", "sweeps-train", ["trainer.max_steps=[1"], ["trainer.max_steps=[1"]),
    Case("unknown_task_in_eval", "sweeps-eval", ["task=nope", "ckpt=/x"], ["task/nope", "determinant_small"]),
    # keys appended with "+", which Hydra accepts into a schema and OmegaConf kept silently
    train_case(
        "appended_unknown_key", ["+trainer.max_stepz=3"], ["trainer.max_stepz", "did you mean trainer.max_steps?"]
    ),
    train_case("appended_unknown_top_key", ["+studdy=x"], ["studdy", "did you mean study?"]),
    # sizes
    train_case("batch_size_zero", ["trainer.batch_size=0"], ["trainer.batch_size", "> 0"]),
    train_case("max_steps_negative", ["trainer.max_steps=-1"], ["trainer.max_steps", "> 0"]),
    train_case("eval_size_zero", ["eval.size=0"], ["eval.size", "> 0"]),
    train_case("lr_negative", ["algo.optimizer.lr=-0.001"], ["algo.optimizer.lr", "> 0"]),
    train_case("save_every_zero", ["trainer.save_every=0"], ["trainer.save_every", "> 0"]),
    train_case("save_every_empty_list", ["trainer.save_every=[]"], ["trainer.save_every", "no checkpoint"]),
    train_case("accumulate_zero", ["trainer.accumulate=0"], ["trainer.accumulate", "> 0"]),
    train_case("grpo_group_size_zero", ["algo=grpo", "algo.group_size=0", "init.step=1"], ["algo.group_size", "> 0"]),
    train_case("grpo_group_size_one", ["algo=grpo", "algo.group_size=1", "init.step=1"], ["algo.group_size=1", ">= 2"]),
    train_case(
        "grpo_clip_zero",
        ["algo=grpo", "algo.policy_loss.clip=0", "init.step=1"],
        ["algo.policy_loss.clip", "> 0"],
    ),
    train_case(
        "ppo_advantage_typo",
        ["algo=ppo", "+algo.advantage.gama=0.9", "init.step=1"],
        ["algo.advantage.gama", "did you mean algo.advantage.gamma?"],
    ),
    train_case(
        "reinforce_group_size_one",
        ["algo=reinforce", "algo.group_size=1", "init.step=1"],
        ["algo.group_size=1", "group_mean"],
    ),
    # empty splits and grids
    train_case("eval_splits_empty", ["eval.splits=[]"], ["eval.splits is empty", "'id'"]),
    train_case(
        "task_targets_admit_no_hand",
        ["task=general_points_compact", "task.targets=[100000]"],
        ["task.targets", "id split"],
    ),
    Case(
        "study_rl_without_inits",
        "sweeps-study",
        ["experiment=tiny_smoke", "plan.rl.init_steps=[]", "paths.output_dir={tmp}"],
        ["plan.rl", "init_steps"],
    ),
    Case(
        "study_rl_algos_empty",
        "sweeps-study",
        ["experiment=tiny_smoke", "plan.rl.algos=[]", "paths.output_dir={tmp}"],
        ["plan.rl.algos is empty"],
    ),
    Case(
        "multirun_expands_to_nothing",
        "sweeps-train",
        ["-m", "seed=range(0,0)", "hydra/launcher=local", "trainer=smoke", "paths.output_dir={tmp}"],
        ["no jobs", "swept key"],
    ),
    # the RL start checkpoint
    Case(
        "rl_init_sft_run_missing",
        "sweeps-train",
        [*RL, "init.step=3", "paths.output_dir={tmp}"],
        ["{tmp}/" + str(SFT_RUN / "ckpt" / "step=000003"), "sweeps-train algo=sft"],
    ),
    Case(
        "rl_init_step_never_saved",
        "train",
        [*RL, "init.step=5", "paths.output_dir={tmp}/out"],
        ["step=000005", "does not exist", "trainer.save_every"],
        setup=copy_out,
    ),
    Case(
        "rl_init_role_of_unfinished_sft",
        "train",
        [*RL, "init.role=id_peak", "paths.output_dir={tmp}/out"],
        ["init.role=id_peak", str(SFT_RUN)],
        setup=lambda t, b: (copy_out(t, b) / "DONE").unlink(),
    ),
    Case(
        "rl_init_other_model_family",
        "train",
        [*RL, "init.step=2", "paths.output_dir={tmp}/out"],
        [RL_CKPT, "not a tiny model", "model_type=qwen2"],
        setup=lambda t, b: edit_json(rl_ckpt(t, b) / "config.json", model_type="qwen2"),
    ),
    Case(
        "rl_init_other_vocab",
        "train",
        [*RL, "init.step=2", "paths.output_dir={tmp}/out"],
        [RL_CKPT, "vocab_size=400 (expected 367)"],
        setup=lambda t, b: edit_json(rl_ckpt(t, b) / "config.json", vocab_size=400),
    ),
    Case(
        "rl_init_truncated_safetensors",
        "train",
        [*RL, "init.step=2", "paths.output_dir={tmp}/out"],
        [RL_CKPT + "/model.safetensors", "corrupted"],
        setup=lambda t, b: truncate(rl_ckpt(t, b) / "model.safetensors"),
    ),
    Case(
        "rl_init_torn_config_json",
        "train",
        [*RL, "init.step=2", "paths.output_dir={tmp}/out"],
        [RL_CKPT + "/config.json", "not valid JSON"],
        setup=lambda t, b: (rl_ckpt(t, b) / "config.json").write_text('{"model_type": "lla'),
    ),
    # checkpoints given to sweeps-eval
    Case(
        "eval_ckpt_does_not_exist",
        "sweeps-eval",
        ["ckpt={tmp}/nope", "task=determinant_small"],
        ["{tmp}/nope", "does not exist"],
    ),
    Case("eval_ckpt_not_set", "eval", ["task=determinant_small"], ["ckpt is not set", "ckpt=<"]),
    Case(
        "eval_garbled_safetensors_header",
        "sweeps-eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small"],
        ["{tmp}/ckpt/model.safetensors", "corrupted"],
        setup=lambda t, b: garble_header(copy_ckpt(t, b) / "model.safetensors"),
    ),
    Case(
        "eval_safetensors_shape_vs_offsets",
        "eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small"],
        ["{tmp}/ckpt/model.safetensors", "does not fit its data offsets"],
        setup=lambda t, b: misshape_header(copy_ckpt(t, b) / "model.safetensors"),
    ),
    Case(
        "eval_config_json_of_another_size",
        "eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small"],
        ["{tmp}/ckpt", "config.json", "model.embed_tokens.weight"],
        setup=lambda t, b: edit_json(copy_ckpt(t, b) / "config.json", vocab_size=400),
    ),
    Case(
        "eval_pickle_weights_only",
        "eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small"],
        ["{tmp}/ckpt", "pytorch_model.bin", "safetensors"],
        setup=lambda t, b: pickle_only(copy_ckpt(t, b)),
    ),
    Case(
        "eval_config_json_missing",
        "eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small"],
        ["{tmp}/ckpt", "no config.json"],
        setup=lambda t, b: (copy_ckpt(t, b) / "config.json").unlink(),
    ),
    Case(
        "eval_tokenizer_missing",
        "eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small"],
        ["{tmp}/ckpt", "tokenizer"],
        setup=lambda t, b: [f.unlink() for f in copy_ckpt(t, b).glob("tokenizer*")],
    ),
    Case(
        "eval_unknown_split_name",
        "sweeps-eval",
        ["ckpt={tmp}/ckpt", "task=determinant_small", "eval.splits=[oodd]"],
        ["eval.splits", "'oodd'"],
        setup=copy_ckpt,
    ),
    # late stages and tools on studies that are not there
    Case("analyze_study_path_missing", "sweeps-analyze", ["study={tmp}/nope"], ["{tmp}/nope", "does not exist"]),
    Case(
        "analyze_study_without_runs",
        "sweeps-analyze",
        ["study=empty", "paths.output_dir={tmp}"],
        ["{tmp}/empty"],
        setup=lambda t, b: (t / "empty").mkdir(),
    ),
    Case(
        "spectral_study_without_runs",
        "sweeps-spectral",
        ["study=empty", "paths.output_dir={tmp}", "task=determinant_small"],
        ["{tmp}/empty", "no run directories"],
        setup=lambda t, b: (t / "empty").mkdir(),
    ),
    Case("sync_dir_missing", "sweeps-sync", ["{tmp}/nope"], ["{tmp}/nope", "does not exist"], common=[]),
    # the memory plan
    Case(
        "plan_impossible_memory",
        "plan",
        ["memory.gpu_gib=0.0001", "memory.seq_len=64"],
        ["memory plan needs", "0.0001 GiB", ": change "],
    ),
    Case(
        "plan_model_path_missing",
        "plan",
        ["model=qwen2_5_0_5b", "model.path={tmp}/no_model", "memory.gpu_gib=80", "memory.seq_len=64"],
        ["model.path='{tmp}/no_model'"],
        common=["tracking=none"],
    ),
    # torn files in a run directory that is re-run (a resume or a skip)
    Case(
        "run_dir_torn_done",
        "train",
        [*SFT, "paths.output_dir={tmp}/out"],
        ["{tmp}/out/" + str(SFT_RUN) + "/DONE", "not valid JSON"],
        setup=run_dir_with_torn("DONE"),
        common=[],
    ),
    Case(
        "run_dir_torn_state_json",
        "train",
        [*SFT, "paths.output_dir={tmp}/out"],
        ["{tmp}/out/" + str(SFT_RUN) + "/resume/state.json", "delete"],
        setup=run_dir_with_torn("resume/state.json", unfinished=True),
        common=[],
    ),
]
