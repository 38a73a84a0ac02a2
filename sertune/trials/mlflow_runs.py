"""MLflow runs of a stage, as MLflow's own UI shows them: one parent run per stage (the tune; the
sweep) with a child run per trial (tag ``mlflow.parentRunId``).

A trial's run has the whole TrainConfig as params (n_att, seed and the searched values among
them), its per-epoch metrics at step = epoch as each epoch reports, a sweep trial's test figures,
and at its end its outcome (tag ``sertune.outcome``: complete, pruned (ASHA stopped it early;
MLflow has no such status, so FINISHED with this tag) or failed (status FAILED)) and artifacts:
the model (a sweep trial's model.pt, a tune trial's last checkpoint) and a sweep trial's
confusion matrix. A resumed run continues its runs instead of adding others; runs a killed
driver left RUNNING are marked KILLED when a driver next takes the same lock (the tune folder,
or the sweep's results table): holding it, it knows no other driver is writing them.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import time

from ray.tune.logger import LoggerCallback

from sertune.config import TrainConfig
from sertune.trials.trainable import trial_config

EPOCH_METRICS = ("train_loss", "val_uar", "best_val_uar", "epoch_time_s")
TRIAL_TAG = "sertune.trial_id"
EXPERIMENT_TAG = "sertune.experiment"  # the experiment directory: MLflow experiments are named by its last part only
WRITER_TAG = "sertune.writer"  # what the stage's lock covers, with the host for local paths
ROLE_TAG = "sertune.role"  # "stage": the parent run of a stage; "trial": a trial's run
OUTCOME_TAG = "sertune.outcome"
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests runs by
REMEMBERED = "mlflow.json"  # in the experiment directory: where its runs are logged


def mlflow_uri(uri: str) -> str:
    """A plain folder becomes a sqlite store in it (``FOLDER/mlflow.db``: MLflow 3 refuses new
    file stores); database and server URIs stay as they are."""
    if "://" in uri or uri.startswith(("file:", "sqlite:", "databricks")):
        return uri
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
        location = (pathlib.Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def remembered(exp: str) -> str | None:
    """The tracking URI this experiment's runs were logged to, if any."""
    from sertune import fsutil

    location = fsutil.join(exp, REMEMBERED)
    if not fsutil.exists(location):
        return None
    try:
        return json.loads(fsutil.read_bytes(location))["tracking_uri"]
    except (ValueError, KeyError, TypeError):
        from sertune.errors import ConfigError

        raise ConfigError(f"{location}: unreadable (it names the MLflow store of this experiment); "
                          "fix or remove it") from None


def tracking_uri(exp: str, given: str | None) -> tuple[str | None, str | None]:
    """Where a stage logs: ``given`` (--mlflow), else where the experiment logged before; and a
    note to print when it is the latter. A ``given`` other than the remembered one is refused:
    the experiment's runs would be split between two stores."""
    from sertune.errors import ConfigError

    had = remembered(exp)
    if given is None:
        return had, (f"MLflow: logging to {had}, where this experiment's runs are ({REMEMBERED})" if had else None)
    if had is not None and mlflow_uri(given) != had:
        raise ConfigError(f"--mlflow {given}: this experiment logs its runs to {had} (its {REMEMBERED}); "
                          "pass that, or no --mlflow")
    return given, None


def remember(exp: str, uri: str) -> None:
    from sertune import fsutil

    if remembered(exp) is None:
        fsutil.write_bytes_atomic(fsutil.join(exp, REMEMBERED), json.dumps({"tracking_uri": uri}, indent=2).encode())


class MlflowTrials(LoggerCallback):
    """The stage's parent run and one child run per trial. ``exp``: the experiment directory
    (a sweep trial's model is there); ``number_of``: a tune trial's number (searcher.py)."""

    def __init__(self, tracking_uri: str, experiment_name: str, base: TrainConfig, tags: dict, stage: str,
                 exp: str | None = None):
        self.tracking_uri, self.experiment_name, self.base = tracking_uri, experiment_name, base
        self.tags, self.stage, self.exp = {**tags, "stage": stage}, stage, exp
        self.number_of = lambda trial_id: None
        self._runs: dict = {}  # Tune trial -> its run id
        self._last: dict = {}  # Tune trial -> its last result

    def setup(self, *args, **kwargs):
        import mlflow

        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_id = ensure_experiment(self.client, self.experiment_name, self.tracking_uri)
        if self.exp:
            remember(self.exp, self.tracking_uri)
        self._end_abandoned()
        self.parent = self._find({ROLE_TAG: "stage"}) or self.client.create_run(
            self.experiment_id, run_name=self.stage, tags={**self.tags, ROLE_TAG: "stage"}).info.run_id
        self.client.update_run(self.parent, status="RUNNING")
        self._params(self.parent, self.base.to_dict())

    def _find(self, tags: dict) -> str | None:
        """The run of this experiment with these tags and this stage's writer (lock)."""
        writer = {WRITER_TAG: self.tags[WRITER_TAG]} if self.tags.get(WRITER_TAG) else {}
        wanted = {**tags, **writer, "stage": self.stage}
        if any("'" in v for v in wanted.values()):
            return None  # a value MLflow's filter cannot quote: a new run
        found = " and ".join(f"tags.`{k}` = '{v}'" for k, v in wanted.items())
        runs = self.client.search_runs([self.experiment_id], filter_string=found, max_results=1)
        return runs[0].info.run_id if runs else None

    def _end_abandoned(self) -> None:
        """A driver killed mid-run never ends its runs. This driver holds the lock its runs are
        tagged with, so RUNNING runs under that tag are such leftovers (a trial that goes on sets
        its run RUNNING again)."""
        writer = self.tags.get(WRITER_TAG, "")
        if not writer or "'" in writer:  # no tag (or one MLflow's filter cannot quote): leave runs alone
            return
        found = f"tags.`{WRITER_TAG}` = '{writer}' and attributes.status = 'RUNNING'"
        for run in self.client.search_runs([self.experiment_id], filter_string=found):
            self.client.set_terminated(run.info.run_id, status="KILLED")

    def _params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        have = self.client.get_run(run_id).data.params
        new = [Param(k, str(v)) for k, v in params.items() if k not in have]  # MLflow refuses to change a param
        for i in range(0, len(new), 100):
            self.client.log_batch(run_id, params=new[i:i + 100])

    def log_trial_start(self, trial):
        if trial in self._runs:
            return
        cfg = trial_config(trial.config, self.base)
        run_id = self._find({TRIAL_TAG: trial.trial_id})
        if run_id is None:
            number = self.number_of(trial.trial_id)
            name = f"N_att={cfg.n_att} seed={cfg.seed}" if self.stage == "sweep" else \
                f"trial {number if number is not None else trial.trial_id}"
            tags = {**self.tags, ROLE_TAG: "trial", PARENT_TAG: self.parent, TRIAL_TAG: trial.trial_id,
                    "n_att": str(cfg.n_att), "seed": str(cfg.seed),
                    **({"sertune.trial": str(number)} if number is not None else {})}
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        else:  # the trial of a resumed run: continue its MLflow run
            self.client.update_run(run_id, status="RUNNING")
        self._params(run_id, cfg.to_dict())
        self._runs[trial] = run_id

    def log_trial_result(self, iteration, trial, result):
        from mlflow.entities import Metric

        if trial not in self._runs:
            self.log_trial_start(trial)
        now, metrics = int(time.time() * 1000), []
        if "epoch" in result:
            step = int(result["epoch"])
            metrics = [Metric(k, float(result[k]), now, step) for k in EPOCH_METRICS if k in result]
            self._last[trial] = result
        if "row" in result:  # a sweep trial's results row: its final test figures
            row = json.loads(result["row"])
            final = {"test_uar": row["uar"], "best_epoch": row["best_epoch"],
                     **{metric_name(f"recall_{c}"): v for c, v in zip(row["classes"], row["recall"])}}
            metrics = [Metric(k, float(v), now, int(row["epochs"])) for k, v in final.items()]
            self.client.log_dict(self._runs[trial], {"confusion": _confusion(row["confusion"]),
                                                     "rows": "true class", "columns": "predicted class"},
                                 "confusion.json")
        if metrics:
            self.client.log_batch(self._runs[trial], metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False):
        run_id = self._runs.pop(trial, None)
        if run_id is None:
            return
        epochs = int(self._last.pop(trial, {}).get("epoch", 0))
        outcome = "failed" if failed else "pruned" if self.stage == "tune" and 0 < epochs < self.base.epochs else "complete"
        self.client.set_tag(run_id, OUTCOME_TAG, outcome)
        if outcome == "pruned":
            self.client.set_tag(run_id, "stopped_by", "ASHA")
        if not failed:
            self._log_model(run_id, trial)
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")

    def _log_model(self, run_id: str, trial) -> None:
        """A sweep trial's model.pt (what `sertune predict` loads); a tune trial's last checkpoint."""
        from sertune import fsutil, paths

        if self.stage == "sweep" and self.exp:
            cfg = trial_config(trial.config, self.base)
            location = paths.sweep_model(self.exp, cfg.n_att, cfg.seed)
            if fsutil.exists(location):
                self._log_bytes(run_id, fsutil.read_bytes(location), os.path.basename(location), "model")
            return
        checkpoint = getattr(trial, "checkpoint", None)
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                self.client.log_artifacts(run_id, d, "checkpoint")

    def _log_bytes(self, run_id: str, data: bytes, name: str, folder: str) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(data)
            self.client.log_artifact(run_id, path, folder)

    def on_experiment_end(self, trials, **info):
        """Every trial ended (an interrupt does not get here: the next driver ends the run)."""
        failed = any(t.status == "ERROR" for t in trials)
        self.client.set_terminated(self.parent, status="FAILED" if failed else "FINISHED")


def _confusion(value) -> list:
    return json.loads(value) if isinstance(value, str) else [list(map(int, r)) for r in value]


def log_report(uri: str, experiment_name: str, files: list[str], tags: dict, metrics: dict | None = None) -> str:
    """One MLflow run named "report" with the table's figures as metrics and the report files as
    artifacts; returns its run id."""
    import mlflow

    uri = mlflow_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(ensure_experiment(client, experiment_name, uri), run_name="report",
                            tags={**tags, "stage": "report"})
    for k, v in (metrics or {}).items():
        client.log_metric(run.info.run_id, k, v)
    for f in files:
        client.log_artifact(run.info.run_id, f)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def metric_name(name: str) -> str:
    """A class name as MLflow accepts it in a metric name (letters, digits, _ - . space /): a
    manifest's labels may hold anything ("hap+exc")."""
    return re.sub(r"[^\w\-. /]", "_", name)
