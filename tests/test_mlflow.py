"""MLflow: a sweep logged run by run through Ray's MLflow integration, read back from a real
local MLflow store (sqlite) with MlflowClient; the report attached as artifacts (here to a
folder store named by SERTUNE_MLFLOW_URI)."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from sertune import results
from sertune.cli import cli
from sertune.store.schema import read_manifest

mlflow = pytest.importorskip("mlflow")
HOST = socket.gethostname()


def run(*args, env=None):
    return CliRunner(env=env).invoke(cli, list(map(str, args)), catch_exceptions=False)


def test_sweep_runs_in_mlflow_and_report_artifacts(synth_store, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # MLflow's default artifact root is ./mlruns: nothing may land here
    exp, uri = tmp_path / "mlexp", f"sqlite:///{tmp_path}/mlflow.db"
    r = run("sweep", "--store", synth_store, "--experiment-dir", exp, "--no-tuned", "--n-att", "1,2", "--seeds", 1,
            "--epochs", 2, "--mlflow", uri)
    assert r.exit_code == 0, r.output

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlexp")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(x.info.run_name for x in runs) == ["N_att=1 seed=0", "N_att=2 seed=0"]
    rows = results.read_results(str(exp / "sweep" / "results.parquet")).set_index("n_att")
    store_hash = read_manifest(synth_store)["store_hash"]
    for x in runs:
        n_att = int(x.data.tags["n_att"])
        row = rows.loc[n_att]
        assert x.info.status == "FINISHED"
        assert x.data.tags["seed"] == "0" and x.data.tags["stage"] == "sweep" and x.data.tags["sertune.experiment"] == f"{HOST}:{exp}"
        assert x.data.tags["sertune.writer"] == f"{HOST}:{exp}/sweep/results.parquet"
        assert x.data.tags["store_hash"] == store_hash and x.data.tags["code_version"] == row["code_version"]
        config = json.loads(row["config"])
        assert {k: x.data.params[k] for k in ("n_att", "epochs", "lr", "batch_size")} == \
            {k: str(config[k]) for k in ("n_att", "epochs", "lr", "batch_size")}
        assert [m.step for m in client.get_metric_history(x.info.run_id, "val_uar")] == [1, 2]
        assert [m.step for m in client.get_metric_history(x.info.run_id, "train_loss")] == [1, 2]
        assert x.data.metrics["test_uar"] == pytest.approx(row["uar"])
        recalls = {k: v for k, v in x.data.metrics.items() if k.startswith("recall_")}
        assert len(recalls) == 8 and all(recalls[k] == pytest.approx(row[k]) for k in recalls)

    # report --mlflow through the environment, to a folder (sertune keeps a sqlite store in it)
    folder = tmp_path / "mlruns"
    r = run("report", "--experiment-dir", exp, env={"SERTUNE_MLFLOW_URI": str(folder)})
    assert r.exit_code == 0, r.output
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    (report_run,) = client.search_runs([client.get_experiment_by_name("mlexp").experiment_id])
    assert report_run.info.run_name == "report"
    names = {a.path for a in client.list_artifacts(report_run.info.run_id)}
    assert {"table.md", "table.csv", "stats.json", "uar_vs_natt.png"} <= names
    assert (folder / "mlartifacts").is_dir() and not list(cwd.iterdir())


@pytest.mark.parametrize("option, value, message", [
    ("--mlflow", "http://127.0.0.1:9/nothing", "Error: --mlflow http://127.0.0.1:9/nothing: cannot open the tracking store ("),
    ("--optuna-storage", "sqlite:////nonexistent/x.db", "Error: --optuna-storage sqlite:////nonexistent/x.db: cannot open the storage ("),
])
def test_unusable_tracking_store_is_refused_before_anything_runs(synth_store, tmp_path, option, value, message):
    r = run("tune", "--store", synth_store, "--experiment-dir", tmp_path / "exp", option, value)
    assert r.exit_code == 2 and r.output.startswith(message) and len(r.output.splitlines()) == 1, r.output
    assert not (tmp_path / "exp").exists()


class _Trial:
    """What the MLflow callback reads of a Tune trial (hashable, as Tune's are)."""

    def __init__(self, trial_id: str, config: dict):
        self.trial_id, self.config = trial_id, config

    def __str__(self):
        return self.trial_id


def test_resumed_trial_continues_its_mlflow_run(tmp_path):
    """A restored experiment's driver starts with no memory of its runs: it must find the
    trial's run by its tag rather than open a second one."""
    from sertune.config import TrainConfig
    from sertune.trials.tracking import MlflowTrials

    uri, trial = f"sqlite:///{tmp_path}/mlflow.db", _Trial("abc_00001", {"pair": [4, 2]})
    for epoch in (1, 2):  # the first driver, then the one that restored the experiment
        callback = MlflowTrials(uri, "exp", TrainConfig(), {"store_hash": "h", "code_version": "v"}, "sweep")
        callback.setup()
        callback.log_trial_start(trial)
        callback.log_trial_result(epoch, trial, {"epoch": epoch, "val_uar": 0.1 * epoch, "train_loss": 1.0})
    callback.log_trial_end(trial)
    client = mlflow.MlflowClient(tracking_uri=uri)
    (only,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert only.info.run_name == "N_att=4 seed=2" and only.info.status == "FINISHED"
    assert only.data.params["n_att"] == "4" and only.data.tags["sertune.trial_id"] == "abc_00001"
    assert [m.step for m in client.get_metric_history(only.info.run_id, "val_uar")] == [1, 2]


def test_runs_a_killed_driver_left_running_are_marked_killed_on_the_next_start(tmp_path):
    """A SIGKILLed driver never ends its runs. The next driver to take the same lock (here: the
    same sweep results table) ends them KILLED; runs under other locks are left alone: another
    results table of the same experiment (a sweep that may be running now), its tune, and an
    experiment of the same name in another folder."""
    from sertune.config import TrainConfig
    from sertune.trials.tracking import WRITER_TAG, MlflowTrials

    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def callback(writer, stage="sweep"):
        c = MlflowTrials(uri, "exp", TrainConfig(), {"store_hash": "h", "code_version": "v", WRITER_TAG: writer}, stage)
        c.setup()
        return c

    writers = {"h:/a/exp/sweep/results.parquet": "sweep", "h:/a/exp/other.parquet": "sweep",
               "h:/a/exp/tune": "tune", "h:/b/exp/sweep/results.parquet": "sweep"}
    for i, (writer, stage) in enumerate(writers.items()):
        callback(writer, stage).log_trial_start(_Trial(f"t_{i:05d}", {"pair": [1, 0]} if stage == "sweep" else {}))
    callback("h:/a/exp/sweep/results.parquet")  # the rerun of the sweep whose driver was killed
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    status = {x.data.tags[WRITER_TAG]: x.info.status for x in runs}
    assert status == {w: "KILLED" if w == "h:/a/exp/sweep/results.parquet" else "RUNNING" for w in writers}
