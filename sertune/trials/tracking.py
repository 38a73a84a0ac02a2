"""Where trials are watched besides the terminal: TensorBoard event files and MLflow runs. All
run in the driver.

- TensorBoard: one event file per trial with the per-epoch metrics under their own names.
- MLflow: one run per trial (Ray's MLflowLoggerCallback), the whole TrainConfig as params,
  per-epoch metrics, a sweep trial's test UAR and per-class recall; tagged with n_att, seed,
  store hash, code version and experiment directory. A resumed run continues its MLflow run
  instead of adding another; runs a killed driver left RUNNING are marked KILLED when a driver
  next takes the same lock (the tune folder, or the sweep's results table): holding it, it knows
  no other driver is writing them.
- Optuna: the searcher (``searcher.py``) writes the stored study itself (``study.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.logger import TBXLoggerCallback

from sertune.config import TrainConfig
from sertune.trials.trainable import trial_config

EPOCH_METRICS = ("train_loss", "val_uar", "best_val_uar", "epoch_time_s")
TRIAL_TAG = "sertune.trial_id"
EXPERIMENT_TAG = "sertune.experiment"  # the experiment directory: MLflow experiments are named by its last part only
WRITER_TAG = "sertune.writer"  # what the stage's lock covers, with the host for local paths
log = logging.getLogger("ray.tune.sertune")


class PlainTensorBoard(TBXLoggerCallback):
    """Ray's TensorBoard logger, limited to the per-epoch metrics, named plainly (``val_uar``,
    not ``ray/tune/val_uar``), at step = epoch; at a trial's end its hyperparameters (HParams):
    a sweep trial's n_att and seed (Tune holds them as one swept ``pair``, which TensorBoard
    cannot show), a tune trial's searched values, with the last epoch's metrics and a sweep
    trial's test UAR."""

    def log_trial_result(self, iteration, trial, result):
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        if "row" in result:  # a sweep trial's closing report: its test UAR, also among the hparams' metrics
            import json

            row = json.loads(result["row"])
            self._trial_writer[trial].add_scalar("test_uar", float(row["uar"]), global_step=int(row["epochs"]))
            self._trial_result[trial] = {**self._trial_result.get(trial, {}), "test_uar": float(row["uar"])}
        if "epoch" not in result:
            return
        writer = self._trial_writer[trial]
        values = {k: float(result[k]) for k in EPOCH_METRICS if isinstance(result.get(k), (int, float))}
        for k, v in values.items():
            writer.add_scalar(k, v, global_step=int(result["epoch"]))
        self._trial_result[trial] = values
        writer.flush()

    def _try_log_hparams(self, trial, result: dict):
        from tensorboardX.summary import hparams

        for summary in hparams(hparam_dict=hparams_of(trial.evaluated_params), metric_dict=result):
            self._trial_writer[trial].file_writer.add_summary(summary)


def hparams_of(evaluated: dict) -> dict:
    """What a trial was run with, as TensorBoard HParams take it (numbers and strings)."""
    params = dict(evaluated)
    if "pair" in params:
        params["n_att"], params["seed"] = params.pop("pair")
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}


# ------------------------------------------------------------------ MLflow


class MlflowTrials(MLflowLoggerCallback):
    """Ray's MLflow logger with sertune's params, metrics and tags, one run per trial."""

    def __init__(self, tracking_uri: str, experiment_name: str, base: TrainConfig, tags: dict, stage: str):
        super().__init__(tracking_uri, experiment_name=experiment_name, tags={**tags, "stage": stage})
        self.base, self.stage = base, stage

    def setup(self, *args, **kwargs):
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        ensure_experiment(client, self.experiment_name, self.tracking_uri)
        self._end_abandoned(client)
        super().setup(*args, **kwargs)

    def _end_abandoned(self, client) -> None:
        """A driver killed mid-trial never ends its runs. This driver holds the lock its runs are
        tagged with, so RUNNING runs under that tag are such leftovers (a trial that goes on sets
        its run RUNNING again)."""
        writer = self.tags.get(WRITER_TAG, "")
        if not writer or "'" in writer:  # no tag (or one MLflow's filter cannot quote): leave runs alone
            return
        exp = client.get_experiment_by_name(self.experiment_name)
        found = f"tags.`{WRITER_TAG}` = '{writer}' and attributes.status = 'RUNNING'"
        for run in client.search_runs([exp.experiment_id], filter_string=found):
            client.set_terminated(run.info.run_id, status="KILLED")

    def log_trial_start(self, trial):
        if trial in self._trial_runs:
            return
        client = self.mlflow_util._get_client()
        cfg = trial_config(trial.config, self.base)
        run_id = self._existing_run(client, trial.trial_id)
        if run_id is None:
            name = f"N_att={cfg.n_att} seed={cfg.seed}" if self.stage == "sweep" else f"tune {trial.trial_id}"
            tags = {**self.tags, TRIAL_TAG: trial.trial_id, "n_att": str(cfg.n_att), "seed": str(cfg.seed)}
            run_id = self.mlflow_util.start_run(tags=tags, run_name=name).info.run_id
            self.mlflow_util.log_params(run_id=run_id, params_to_log=cfg.to_dict())
        else:  # the trial of a resumed run: continue its MLflow run
            client.update_run(run_id, status="RUNNING")
        self._trial_runs[trial] = run_id

    def _existing_run(self, client, trial_id: str) -> str | None:
        exp = client.get_experiment_by_name(self.experiment_name)
        runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}'",
                                  max_results=1) if exp else []
        return runs[0].info.run_id if runs else None

    def log_trial_result(self, iteration, trial, result):
        if trial not in self._trial_runs:
            self.log_trial_start(trial)
        run_id = self._trial_runs[trial]
        if "epoch" in result:
            metrics = {k: result[k] for k in EPOCH_METRICS if k in result}
            self.mlflow_util.log_metrics(run_id=run_id, metrics_to_log=metrics, step=int(result["epoch"]))
        if "row" in result:  # a sweep trial's results row: its final test figures
            import json

            row = json.loads(result["row"])
            final = {"test_uar": row["uar"], "best_epoch": row["best_epoch"],
                     **{k: v for k, v in row.items() if k.startswith("recall_")}}
            self.mlflow_util.log_metrics(run_id=run_id, metrics_to_log=final, step=int(row["epochs"]))

    def log_trial_end(self, trial, failed: bool = False):
        if trial in self._trial_runs:
            super().log_trial_end(trial, failed)


def mlflow_uri(uri: str) -> str:
    """A plain folder becomes a sqlite store in it (``FOLDER/mlflow.db``: MLflow 3 refuses new
    file stores); database and server URIs stay as they are."""
    if "://" in uri or uri.startswith(("file:", "sqlite:", "databricks")):
        return uri
    import pathlib

    folder = pathlib.Path(uri).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def ensure_experiment(client, name: str, uri: str) -> str:
    """The MLflow experiment's id, created if new with its artifacts next to a sqlite store
    (MLflow's default, ./mlruns, would put them wherever the command happens to run)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        import pathlib

        location = (pathlib.Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def log_report(uri: str, experiment_name: str, files: list[str], tags: dict) -> str:
    """One MLflow run named "report" with the report files as artifacts; returns its run id."""
    import mlflow

    uri = mlflow_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(ensure_experiment(client, experiment_name, uri), run_name="report", tags={**tags, "stage": "report"})
    for f in files:
        client.log_artifact(run.info.run_id, f)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


# ------------------------------------------------------------------ what a stage is watched by


@dataclass(frozen=True)
class Watch:
    """How a run is watched: Ray's reporter (``verbose``) or sertune's live view, the file Ray's
    output goes to, an MLflow tracking URI, and (tune) the Optuna storage URL."""

    verbose: bool = False
    log_path: str | None = None
    mlflow: str | None = None
    optuna_storage: str | None = None
    tty: bool | None = None  # None: whether stdout is a terminal


def mlflow_callback(watch: Watch, exp: str, stage: str, base: TrainConfig, store_hash: str, code: str, lock: str):
    """``lock``: the location the stage's lock guards (tune folder, sweep results table)."""
    if not watch.mlflow:
        return []
    tags = {"store_hash": store_hash, "code_version": code, EXPERIMENT_TAG: _place(exp), WRITER_TAG: _place(lock)}
    return [MlflowTrials(mlflow_uri(watch.mlflow), experiment_name(exp), base, tags, stage)]


def _place(location: str) -> str:
    """A location as one string across machines: a URI without its endpoint query (the same
    bucket however it is reached), a local path with its host (the same path elsewhere is not it)."""
    import socket

    from sertune import fsutil

    location = fsutil.split_query(location)[0]
    return location if fsutil.is_uri(location) else f"{socket.gethostname()}:{fsutil.normalize(location)}"


def experiment_name(exp: str) -> str:
    """The MLflow experiment and Optuna study of an experiment directory: its name."""
    return exp.rstrip("/").rsplit("/", 1)[-1] or "sertune"


def __getattr__(name: str):
    # Tune experiments started before the searcher had its own module pickled it under this one.
    if name == "RecordedOptunaSearch":
        from sertune.trials.searcher import RecordedOptunaSearch

        return RecordedOptunaSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
