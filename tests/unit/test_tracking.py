import json

import pytest

from sweeps.runs import MetricsWriter, Run, run_dir
from sweeps.tracking.mlflow_tracker import MlflowTracker, flatten


def test_flatten_drops_secrets_and_nests_keys():
    flat = flatten({"a": {"b": 1, "hf_token": "xyz", "c": [1, 2]}, "password": "p", "MLFLOW_API_KEY": "k"})
    assert flat == {"a.b": "1", "a.c": "[1, 2]"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return "sqlite:///" + str(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


def _run_dir(tmp_path, n=5):
    run = Run(run_dir(tmp_path, "s", "sft", "tiny", "t", "base", 0))  # sync reads the init axis from the path
    run.claim("sig", "study: s\n")
    w = MetricsWriter(run.metrics_file)
    for s in range(n):
        w.write(s, {"train/loss": 1.0 / (s + 1)})
    w.close()
    return run


def test_tracker_mirrors_params_tags_metrics(store, tmp_path):
    from mlflow.tracking import MlflowClient

    run = _run_dir(tmp_path)
    t = MlflowTracker(store, "exp-a")
    t.start(run.path, {"algo": {"lr": 0.1}, "api_token": "secret"}, {"sweeps.seed": "3"}, "study: s\n")
    t.log_metrics(run.read_metrics())
    t.finish()
    r = MlflowClient(store).get_run(t.run_id)
    assert r.data.params["algo.lr"] == "0.1" and "api_token" not in r.data.params
    assert r.data.tags["sweeps.seed"] == "3" and r.info.status == "FINISHED"
    hist = MlflowClient(store).get_metric_history(t.run_id, "train/loss")
    assert sorted(m.step for m in hist) == [0, 1, 2, 3, 4]
    assert json.loads((run.path / "mlflow.json").read_text())["pushed"] == 5


def test_tracking_failure_never_raises(tmp_path):
    run = _run_dir(tmp_path)
    t = MlflowTracker("sqlite:////proc/forbidden/mlflow.db", "exp")
    t.start(run.path, {}, {}, "")
    t.log_metrics(run.read_metrics())
    t.finish()
    assert t.enabled is False and t.run_id is None


def test_sync_pushes_the_rest_idempotently(store, tmp_path):
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.sync import sync_run

    run = _run_dir(tmp_path, n=4)
    (run.path / "config.yaml").write_text(
        "study: s\nseed: 0\nparent_run_id: null\nmodel: {name: tiny}\ntask: {name: t}\nalgo: {name: sft}\n"
        f"tracking: {{uri: '{store}', experiment: exp-sync}}\n"
    )
    t = MlflowTracker(store, "exp-sync")  # a live job that mirrored 2 of 4 records
    t.start(run.path, {}, {}, "")
    t.log_metrics(run.read_metrics()[:2])
    assert sync_run(run.path) == 2
    assert sync_run(run.path) == 0  # second sync: nothing new
    hist = MlflowClient(store).get_metric_history(t.run_id, "train/loss")
    assert sorted(m.step for m in hist) == [0, 1, 2, 3]
    # a run directory never mirrored gets a new MLflow run
    (run.path / "mlflow.json").unlink()
    assert sync_run(run.path) == 4


def test_artifacts_land_beside_the_sqlite_store(store):
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.mlflow_tracker import ensure_experiment

    client = MlflowClient(store)
    exp = client.get_experiment(ensure_experiment(client, "exp-art"))
    db_dir = store[len("sqlite:///") :].rsplit("/", 1)[0]
    assert exp.artifact_location == f"file://{db_dir}/mlartifacts/exp-art"
