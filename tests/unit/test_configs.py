"""Every shipped config composes against its schema and passes validation."""

import pytest
from hydra.errors import ConfigCompositionException

from sweeps.schema import ConfigError, save_steps, validate
from tests.conftest import CONF, compose

GROUPS = ["model", "task", "algo", "trainer", "tracking", "rollout"]
NAMED = {"model", "task", "algo", "trainer"}  # tracking and rollout options have no name
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
EXPERIMENTS = [p.stem for p in sorted((CONF / "experiment").glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}"])
    validate(cfg)
    if group in NAMED:
        assert cfg[group].get("name") == option  # run directories and tags use the name


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    validate(compose([f"experiment={experiment}"]))


def test_eval_config_validates_and_its_ckpt_is_the_directory_evaluated(tmp_path):
    """sweeps-eval's ckpt reaches the checkpoint check (its path named in the error), and a
    missing one is refused naming the field; nothing is loaded or written."""
    from sweeps.cli.eval import evaluate
    from sweeps.models.checkpoint import CheckpointError

    missing = tmp_path / "nowhere" / "step=000300"
    # quoted: the path has '=', which an unquoted Hydra override refuses (the README quotes it too)
    cfg = compose(["experiment=tiny_sft", f"ckpt='{missing}'"], config_name="eval")
    validate(cfg)
    assert cfg.out is None  # eval.json goes into the checkpoint by default
    with pytest.raises(CheckpointError, match=f"checkpoint directory {missing} does not exist"):
        evaluate(cfg)
    with pytest.raises(ConfigError, match="ckpt is not set: pass ckpt=<checkpoint directory>"):
        evaluate(compose([], config_name="eval"))
    assert not (tmp_path / "nowhere").exists()


def test_unknown_task_names_the_group():
    with pytest.raises(ConfigCompositionException, match="task/nope"):
        compose(["task=nope"])


def test_typo_and_wrong_type_fail_at_compose_time_naming_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["algo.lrr=1"])
    assert "lrr" in str(e.value.__cause__ or e.value)
    with pytest.raises(ConfigCompositionException) as e:
        compose(["trainer.max_steps=many"])
    assert "max_steps" in str(e.value.__cause__ or e.value)


@pytest.mark.parametrize(
    "override,message",
    [
        ("algo.optimizer.lr=-1", "algo.optimizer.lr must be > 0"),
        ("trainer.save_every=0", "trainer.save_every must be > 0"),
        ("trainer.save_every=[5,500]", "trainer.save_every steps must lie in 1..300"),
        ("eval.splits=[id,test]", "eval.splits has unknown split"),
        ("task.max_attempts=0", "task.max_attempts"),
        ("+task.colour=red", "task.colour is not a field of GeneralPoints"),
        ("model.dtype=float8", "model.dtype"),
        ("algo.scheduler=sawtooth", "algo.scheduler"),
    ],
)
def test_cross_field_checks_name_the_key(override, message):
    cfg = compose([override])
    with pytest.raises((ConfigError, ValueError)) as e:
        validate(cfg)
    assert message in str(e.value)
    assert "\n" not in str(e.value).strip()


def test_save_steps():
    assert save_steps(100, 300) == [100, 200, 300]
    assert save_steps(40, 100) == [40, 80, 100]  # the last step is always saved
    assert save_steps([30, 10], 100) == [10, 30]


@pytest.mark.parametrize("entry", ["eval", "analyze", "spectral"])
def test_entry_points_keep_the_experiments_values(entry):
    """Their schemas merge after train.yaml + experiment and must not reset it to defaults."""
    cfg = compose(["experiment=tiny_sft"], config_name=entry)
    assert cfg.study == "tiny_sft" and cfg.eval.size == 100 and cfg.trainer.max_steps == 200


@pytest.mark.parametrize(
    "override,message",
    [
        ("algo.face_card_prob=1.5", "algo.face_card_prob must be in [0, 1]"),
        ("algo.face_high_prob=-0.1", "algo.face_high_prob must be in [0, 1]"),
        ("algo.targets=[]", "algo.targets must be positive integers"),
        ("algo.schedule_steps=0", "algo.schedule_steps must be > 0"),
    ],
)
def test_pretrain_checks_name_the_key(override, message):
    cfg = compose(["experiment=tiny_pretrain", override])
    with pytest.raises((ConfigError, ValueError)) as e:
        validate(cfg)
    assert message in str(e.value) and "\n" not in str(e.value).strip()


def test_tiny_base_path_is_the_shipped_asset_of_its_base_seed():
    cfg = compose(["model=tiny_base", "model.base_seed=1"])
    assert cfg.model.path == str(CONF.parent / "assets" / "tiny_base" / "base1")
    assert compose(["experiment=tiny_demo"]).model.path.endswith("assets/tiny_base/base0")


@pytest.mark.parametrize(
    "override,message",
    [
        ("algo.policy_loss.clip=0", "algo.policy_loss.clip must be > 0, got 0"),
        (
            "+algo.policy_loss.clipp=0.1",
            "algo.policy_loss.clipp is not a parameter of sweeps.rl.losses.clipped_surrogate",
        ),
        ("algo.policy_loss.agg._target_=sweeps.rl.losses.sum", "algo.policy_loss.agg._target_='sweeps.rl.losses.sum'"),
        ("algo.advantage._target_=sweeps.rl.advantages.nope", "algo.advantage._target_="),
        ("algo.advantage._partial_=false", "algo.advantage._partial_ must be true"),
        ("algo.kl_estimator._target_=sweeps.rl.kl.k4", "algo.kl_estimator._target_="),
        ("algo.optimizer.betas=[0.9,1.5]", "algo.optimizer.betas must be two values in [0, 1)"),
        ("+algo.optimizer.momentum=0.9", "algo.optimizer.momentum is not a parameter of torch.optim.AdamW"),
    ],
)
def test_rl_components_are_checked_against_their_functions(override, message):
    """The _target_ nodes (advantage, policy loss and its agg, KL estimator, optimizer) are
    checked against the function they name: a typo is one line naming the key."""
    cfg = compose(["algo=grpo", "init.step=1", override])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value) and "\n" not in str(e.value).strip()


def test_ppo_takes_its_advantage_and_loss_from_config():
    algo = compose(["algo=ppo", "init.step=1", "algo.advantage.gamma=0.5"]).algo
    assert algo.advantage._target_ == "sweeps.rl.advantages.gae" and algo.advantage.gamma == 0.5
    assert algo.policy_loss._target_ == "sweeps.rl.losses.clipped_surrogate" and algo.policy_loss.clip == 0.1
    with pytest.raises(ConfigError, match=r"algo.advantage.lam must be in \[0, 1\], got 2"):
        validate(compose(["algo=ppo", "init.step=1", "algo.advantage.lam=2"]))


def test_grpo_is_reinforce_with_three_keys_changed():
    grpo, reinforce = (compose([f"algo={a}", "init.step=1"]).algo for a in ("grpo", "reinforce"))
    differ = {k for k in reinforce if grpo.get(k) != reinforce.get(k)}
    assert differ == {"name", "advantage", "policy_loss"}


@pytest.mark.parametrize("model", [p.stem for p in sorted((CONF / "model").glob("*.yaml"))])
def test_every_model_builder_says_what_its_checkpoints_look_like(model):
    """models/build.py asks the builder (its ``architecture`` tag), not the builder's name."""
    from hydra.utils import get_method

    assert callable(get_method(compose([f"model={model}"]).model.builder).architecture)


def test_the_from_config_architecture_is_known_offline():
    from sweeps.models.build import expected_architecture

    arch = expected_architecture(compose(["model=tiny"]).model)
    assert arch["model_type"] == "llama" and arch["hidden_size"] == 128 and arch["vocab_size"] > 0
