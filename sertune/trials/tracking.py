"""Where trials are watched besides the terminal: TensorBoard event files and MLflow runs. All
run in the driver.

- TensorBoard: one event file per trial with the per-epoch metrics under their own names.
- MLflow (``mlflow_runs.py``): a parent run per stage, a child run per trial; tagged with
  store hash, code version and experiment directory. The experiment remembers where it logs
  (``EXP/mlflow.json``), so a resumed stage logs the trials it adds to the same place.
- Optuna: the searcher (``searcher.py``) writes the stored study itself (``study.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ray.tune.logger import TBXLoggerCallback

from sertune.config import TrainConfig
from sertune.trials.mlflow_runs import EPOCH_METRICS, EXPERIMENT_TAG, WRITER_TAG, MlflowTrials, mlflow_uri


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
    return [MlflowTrials(mlflow_uri(watch.mlflow), experiment_name(exp), base, tags, stage, exp)]


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
