"""Every dotted import path in every YAML under conf/ resolves, so a typo (``algo.module``,
``model.builder``, a ``_target_``, ...) fails here naming its file and key, not later inside a job."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONF

PATH_KEYS = {"_target_", "module", "builder", "job"}  # and any key ending in _fn, _cls or _class
IN_PACKAGE = {"config_class": "transformers"}  # bare names looked up in a package (models/build.py)
DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?$")


def is_path(key: str, value: str) -> bool:
    """A value under a path key, or one that looks like ``sweeps.x.Y`` / ``package.module:attr``."""
    if key in PATH_KEYS or key.endswith(("_fn", "_cls", "_class")):
        return True
    return bool(DOTTED.match(value)) and (value.startswith(("sweeps.", "hydra_plugins.")) or ":" in value)


def dotted_paths(conf: Path) -> list[tuple[str, str, str]]:
    """(file relative to ``conf``, dotted key, value) of every import path in every YAML."""
    found: list[tuple[str, str, str]] = []

    def walk(node, where: str, rel: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k), rel)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", rel)
        elif isinstance(node, str) and is_path(where.rsplit(".", 1)[-1], node):
            found.append((rel, where, node))

    for f in sorted(conf.rglob("*.yaml")):
        walk(yaml.safe_load(f.read_text()), "", f.relative_to(conf).as_posix())
    return found


def resolve(value: str, leaf: str = ""):
    if leaf in IN_PACKAGE and "." not in value and ":" not in value:
        value = f"{IN_PACKAGE[leaf]}:{value}"
    if ":" in value:  # package.module:attr[.attr]
        mod, attr = value.split(":", 1)
        obj = importlib.import_module(mod)
        for a in attr.split("."):
            obj = getattr(obj, a)
        return obj
    from hydra.utils import get_object

    return get_object(value)


def problem(rel: str, key: str, value: str) -> str | None:
    """None, or one line naming the file, the key and what is wrong."""
    leaf = key.rsplit(".", 1)[-1]
    try:
        obj = resolve(value, leaf)
    except Exception as err:  # noqa: BLE001  (any failure to import is the finding)
        return f"conf/{rel}: {key}: {value!r} does not resolve ({type(err).__name__}: {str(err).splitlines()[0]})"
    if not callable(obj):
        return f"conf/{rel}: {key}: {value!r} is a {type(obj).__name__}, not something callable"
    if leaf == "module" and not isinstance(obj, type):
        return f"conf/{rel}: {key}: {value!r} is not a class (get_class(algo.module) builds the LightningModule)"
    if leaf == "job" and not hasattr(importlib.import_module(value.rsplit(".", 1)[0]), "init_name"):
        return f"conf/{rel}: {key}: the module of {value!r} has no init_name (sweeps.launching needs it)"
    return None


def problems(conf: Path) -> list[str]:
    return [p for p in (problem(*found) for found in dotted_paths(conf)) if p]


PATHS = dotted_paths(CONF)


@pytest.mark.parametrize("rel,key,value", PATHS, ids=[f"{r}:{k}" for r, k, _ in PATHS])
def test_every_dotted_path_in_conf_resolves(rel, key, value):
    found = problem(rel, key, value)
    assert found is None, found


def test_the_walk_finds_each_kind_of_path():
    """Hand-picked entries of each kind, so a walk that finds nothing cannot pass vacuously."""
    expected = {
        ("model/tiny.yaml", "builder", "sweeps.models.build.from_config"),
        ("model/tiny.yaml", "arch.config_class", "LlamaConfig"),
        ("task/rank.yaml", "_target_", "sweeps.tasks.rank.Rank"),
        ("algo/sft.yaml", "job", "sweeps.jobs.sft.run"),
        ("trainer/strategy/ddp.yaml", "_target_", "lightning.pytorch.strategies.DDPStrategy"),
        ("hydra/launcher/local.yaml", "_target_", "hydra_plugins.sweeps_launchers.SkippingLocalLauncher"),
        ("train.yaml", "hydra.callbacks.redact_secrets._target_", "sweeps.secrets.RedactHydraFiles"),
    }
    assert expected <= set(PATHS)
    assert {k.rsplit(".", 1)[-1] for _, k, _ in PATHS} >= {"_target_", "builder", "module", "job"}
    assert all(not v.startswith("${") for _, _, v in PATHS)  # interpolations are not paths
    # a file name or a model id with dots is not a path; a colon form outside our packages is
    assert not is_path("name", "qwen2.5") and not is_path("path", "Qwen/Qwen2.5-0.5B")
    assert is_path("x", "torch.optim:AdamW") and is_path("score_fn", "anything")


def test_a_typo_in_a_copy_of_conf_is_named_with_its_file_and_key(tmp_path):
    conf = Path(shutil.copytree(CONF, tmp_path / "conf"))
    tiny = conf / "model" / "tiny.yaml"
    tiny.write_text(
        tiny.read_text()
        .replace("sweeps.models.build.from_config", "sweeps.models.build.from_confg")
        .replace("LlamaConfig", "LlamaConfg")
    )
    grpo = conf / "algo" / "grpo.yaml"
    grpo.write_text(grpo.read_text() + "advantage_fn: sweeps.modules.policy_gradint:group_advantages\n")
    (conf / "task" / "broken.yaml").write_text("_target_: sweeps.tasks.rank.Rnak\nreward: sweeps.tasks:NotHere\n")
    found = problems(conf)
    assert len(found) == 5, found
    assert found[0].startswith(
        "conf/algo/grpo.yaml: advantage_fn: 'sweeps.modules.policy_gradint:group_advantages' "
        "does not resolve (ModuleNotFoundError"
    ), found
    assert found[1].startswith("conf/model/tiny.yaml: builder: 'sweeps.models.build.from_confg' does not resolve"), (
        found
    )
    assert found[2].startswith("conf/model/tiny.yaml: arch.config_class: 'LlamaConfg' does not resolve"), found
    assert found[3].startswith("conf/task/broken.yaml: _target_: 'sweeps.tasks.rank.Rnak' does not resolve"), found
    assert found[4].startswith(
        "conf/task/broken.yaml: reward: 'sweeps.tasks:NotHere' does not resolve (AttributeError"
    ), found
    assert problems(CONF) == []
