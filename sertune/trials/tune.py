"""`sertune tune`: OptunaSearch (TPE) + ASHA over the N_att = 1 baseline, on validation UAR.

The objective is ``best_val_uar``, the running best validation UAR of a trial: it is what model
selection by best epoch keeps, and being monotone it gives ASHA a fair rung comparison. Only a
base configuration with ``selected_on: test`` (the authors' leak, to measure it) makes the
objective the pooled test UAR at the best validation epochs.
Re-running the same command restores the experiment (searcher state included) and finishes it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import asdict

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter

from sertune import fsutil, locks, paths
from sertune.config import TUNED_KNOBS, TrainConfig
from sertune.errors import ConfigError, TrialError
from sertune.experiment import TuneSettings, differences, identity
from sertune.provenance import code_version
from sertune.search_space import to_tune
from sertune.store.schema import read_manifest
from sertune.trials import study as stored_study
from sertune.trials import tracking, tuner
from sertune.trials.progress import LiveView
from sertune.trials.searcher import ConsistentSearch, RecordedOptunaSearch, recorded, restoring
from sertune.trials.trainable import TrialInputs

METRIC, MODE = "best_val_uar", "max"
LEAKY_METRIC = "test_uar_at_best_val"  # selected_on test: the authors' objective, to measure that leak
NAME = "tune"


def objective(base: TrainConfig) -> str:
    """What the search maximises: the running best validation UAR, or under ``selected_on: test``
    (sertune/leaks.py) the pooled test UAR at each fold's best validation epoch."""
    return LEAKY_METRIC if base.selected_on == "test" else METRIC


def _tuner(store: str, exp: str, base: TrainConfig, space: dict, s: TuneSettings, study: str | None) -> tune.Tuner:
    inputs = TrialInputs(store=store, base=base, checkpoint_every=s.checkpoint_every, code_version=code_version())
    path = fsutil.join(paths.tune_dir(exp), NAME)
    request = _request(store, base, space, s, study)
    if tune.Tuner.can_restore(path):
        _check_same_request(exp, request)
        return restoring(tuner.restore(path, inputs, s), path)
    fsutil.write_bytes_atomic(_request_file(exp), json.dumps(request, indent=2, sort_keys=True).encode())
    searcher = RecordedOptunaSearch(metric=objective(base), mode=MODE, seed=s.search_seed, max_t=base.epochs,
                                    export_storage=study, study_name=tracking.experiment_name(exp),
                                    attrs={"n_att": base.n_att, "seed": base.seed})
    if s.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=base.epochs,
                              grace_period=min(s.grace_period, base.epochs), reduction_factor=s.reduction_factor)
    config = tune.TuneConfig(metric=objective(base), mode=MODE, search_alg=ConsistentSearch(searcher), scheduler=scheduler,
                             num_samples=s.num_samples, reuse_actors=True)
    return tuner.make_tuner(inputs, s, to_tune(space), config, NAME, paths.tune_dir(exp))


def study_storage(exp: str, url: str | None) -> str | None:
    """The Optuna storage: ``url``, else a sqlite file in the experiment (local experiments only)."""
    if url:
        return url
    if fsutil.is_uri(exp):
        return None
    os.makedirs(paths.tune_dir(exp), exist_ok=True)  # sqlite creates the file, not its folder
    return "sqlite:///" + os.path.abspath(fsutil.join(paths.tune_dir(exp), "optuna.db"))


def _request_file(exp: str) -> str:
    return fsutil.join(paths.tune_dir(exp), "request.json")


def _request(store: str, base: TrainConfig, space: dict, s: TuneSettings, study: str | None) -> dict:
    """What defines the experiment (experiment.identity); resources and retries may change.
    The Optuna storage too: the restored searcher keeps writing where it wrote."""
    store_hash = read_manifest(store)["store_hash"]  # a store rebuilt at the same path is another experiment
    return {"store": store, "store_hash": store_hash, "train": base.identity(exclude=TUNED_KNOBS),
            "space": space, "settings": identity(s), "optuna_storage": study}


def _check_same_request(exp: str, request: dict) -> None:
    """Tuner.restore silently keeps the old settings: refuse a rerun that asks for others. And it
    unpickles tuner.pkl, which can run any code: restore only what sertune created (its request
    file present and the same), never a Ray Tune folder of unknown origin."""
    location = _request_file(exp)
    try:
        recorded = json.loads(fsutil.read_bytes(location)) if fsutil.exists(location) else None
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise ConfigError(f"{paths.tune_dir(exp)}: holds a Ray Tune experiment without a readable request.json, so "
                          "not one sertune created; not restored (restoring runs its tuner.pkl); use another --experiment-dir")
    try:  # through TrainConfig, so a request written before an option existed reads as its default
        recorded = {**recorded, "train": TrainConfig.from_dict(recorded["train"]).identity(exclude=TUNED_KNOBS)}
    except (KeyError, TypeError, ConfigError):
        pass  # compared as it is: the difference names what is wrong
    diff = differences(recorded, request)
    if diff:
        raise ConfigError(f"{paths.tune_dir(exp)}: an unfinished or finished experiment with other settings "
                          f"exists (differs in {', '.join(diff)}); rerun it as it was or use another --experiment-dir")


def _check_finished(grid, num_samples: int) -> None:
    """fit() also returns when interrupted (Ctrl-C): the saved experiment then holds unfinished
    trials, or fewer than asked for. Publishing a "best" of that would be wrong. The statuses in
    memory all read TERMINATED after an interrupt; those saved for a restore do not."""
    # experiment_path has no scheme on remote storage (bucket/exp/tune/tune): give Tune the filesystem
    trials = tune.ExperimentAnalysis(grid.experiment_path, storage_filesystem=grid.filesystem).trials
    done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
    if done < len(trials) or len(trials) < num_samples:
        raise TrialError(f"tune stopped before the end ({done} of {num_samples} trials finished); "
                         "rerun the same command to continue it")


def run_tune(store: str, exp: str, base: TrainConfig, space: dict, s: TuneSettings,
             watch: tracking.Watch = tracking.Watch()) -> dict:
    """Run (or resume) the search; write best_config.json and trials.parquet; return the best.
    One tune run per experiment at a time: two would write the same Tune folder and study."""
    with locks.hold(fsutil.join(paths.tune_dir(exp), NAME), "a tune run of this experiment", TrialError):
        return _run_tune(store, exp, base, space, s, watch)


def _run_tune(store: str, exp: str, base: TrainConfig, space: dict, s: TuneSettings, watch: tracking.Watch) -> dict:
    manifest = read_manifest(store)
    if base.n_att != 1:
        raise ConfigError("the tune stage tunes the N_att = 1 baseline")
    study = study_storage(exp, watch.optuna_storage)
    if study:
        stored_study.claim_study(study, tracking.experiment_name(exp), exp, objective(base))
    callbacks = tracking.mlflow_callback(watch, exp, "tune", base, manifest["store_hash"], code_version(),
                                         paths.tune_dir(exp))
    with fsutil.storage_errors(paths.tune_dir(exp)):
        the_tuner = _tuner(fsutil.normalize(store), exp, base, space, s, study)
        searcher = recorded(the_tuner._local_tuner._tune_config.search_alg)  # the object fit() runs
        if not watch.verbose:
            callbacks = [LiveView("tune", s.num_samples, base.epochs, watch.log_path, watch.tty), *callbacks]
        for callback in callbacks:  # the live view and MLflow name trials by their number
            callback.number_of = searcher.number_of
        grid = tuner.fit(the_tuner, callbacks, watch.verbose)
        _check_finished(grid, s.num_samples)
    number = dict(searcher.numbers)  # Ray trial id -> its number
    metric = objective(base)
    ok = [r for r in grid if r.error is None and r.metrics and metric in r.metrics]
    if not ok:
        raise TrialError(f"no tune trial finished ({tuner.first_error(grid) or 'no results'})")
    best = grid.get_best_result(metric=metric, mode=MODE, scope="all")
    tuned = {k: best.config[k] for k in TUNED_KNOBS if k in best.config}
    found, note = stored_study.importances(study, tracking.experiment_name(exp))
    summary = {
        "config": TrainConfig.from_dict({**base.to_dict(), **tuned}).to_dict(),
        "tuned": tuned,
        "best_val_uar": best.metrics[METRIC],
        "objective": metric,
        "best_objective": best.metrics[metric],
        "trial_id": best.metrics.get("trial_id"),
        "trial": number.get(best.metrics.get("trial_id")),  # its number (console, trials.parquet, Optuna study)
        "search_space": space,
        "settings": asdict(s),
        "n_trials": len(grid),
        "n_errored": grid.num_errors,
        "n_stopped_early": sum(r.metrics.get("training_iteration", base.epochs) < base.epochs for r in ok),
        "importances": found,  # Optuna's, over full-budget trials; None when not computable (see the note)
        "importances_note": note,
        "optuna_storage": study,
        "optuna_study": tracking.experiment_name(exp),
        "store_hash": manifest["store_hash"],
        "code_version": code_version(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    summary = _publish(summary, paths.best_config(exp))
    _write_trials(grid, paths.tune_trials(exp), base.epochs, number)
    _write_curves(grid, paths.tune_curves(exp), number)
    return summary


# Who wrote the file, when, and with what resources and retries (a rerun may change those): not what was found.
PROVENANCE = ("code_version", "created_at", "settings")


def _publish(summary: dict, location: str) -> dict:
    """Write best_config.json, unless it already holds this result: rerunning a finished tune
    must not restamp the file with the rerun's code version, time and settings (the file keeps
    those of the run that found the result)."""
    if fsutil.exists(location):
        try:
            old = json.loads(fsutil.read_bytes(location))
        except ValueError:
            old = None
        strip = lambda d: {k: v for k, v in d.items() if k not in PROVENANCE}  # noqa: E731
        if isinstance(old, dict) and strip(old) == strip(json.loads(json.dumps(summary))):
            return old
    fsutil.write_bytes_atomic(location, json.dumps(summary, indent=2).encode())
    return summary


def _write_trials(grid, location: str, max_epochs: int, number: dict) -> None:
    """Tune's per-trial frame, first the trial's number (nullable: a tune begun before numbers)."""
    df = grid.get_dataframe()  # each trial's last result: training_iteration = epochs it ran before ASHA stopped it
    df.insert(0, "trial", pd.array([number.get(t) for t in df["trial_id"]], dtype="Int64"))
    df = df.sort_values("trial", kind="stable", ignore_index=True)
    df["stopped_early"] = df["training_iteration"] < max_epochs  # told to Optuna as PRUNED
    for col in df.columns[df.dtypes == object]:
        df[col] = _one_type(df[col])
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    fsutil.write_bytes_atomic(location, buf.getvalue())


def _one_type(col: pd.Series) -> pd.Series:
    """An object column of Tune's frame as one Parquet type: booleans with gaps (should_checkpoint
    of trials that never checkpointed) as nullable booleans, strings as strings; anything else
    mixed cannot go to Parquet as it is, and becomes its text."""
    values = col.dropna()
    if len(values) and values.map(lambda v: isinstance(v, bool)).all():
        return col.astype("boolean")
    if values.map(lambda v: isinstance(v, str)).all():
        return col
    return col.astype(str)


CURVE_COLUMNS = ("trial", "trial_id", "epoch", "val_uar", "best_val_uar", "timestamp")


def _write_curves(grid, location: str, number: dict) -> None:
    """One row per trial and epoch it ran (ASHA-stopped trials end early): what the search
    looked like, for its picture."""
    frames = []
    for r in grid:
        m = r.metrics_dataframe
        if m is None or m.empty or "val_uar" not in m:
            continue  # a trial that errored before its first epoch
        tid = str(r.metrics.get("trial_id", ""))
        frames.append(pd.DataFrame({"trial": pd.array([number.get(tid)] * len(m), dtype="Int64"), "trial_id": tid,
                                    "epoch": m["training_iteration"].astype("int64"),
                                    "val_uar": m["val_uar"].astype(float), "best_val_uar": m["best_val_uar"].astype(float),
                                    "timestamp": m["timestamp"].astype("int64")}))  # orders the trials as they ran
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(CURVE_COLUMNS))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df[list(CURVE_COLUMNS)], preserve_index=False), buf)
    fsutil.write_bytes_atomic(location, buf.getvalue())


def load_best_config(location: str) -> TrainConfig:
    if not fsutil.exists(location):
        raise ConfigError(f"{location}: no tuned configuration; run `sertune tune` first, or pass --config FILE or --no-tuned")
    try:
        data = json.loads(fsutil.read_bytes(location))
    except ValueError as e:
        raise ConfigError(f"{location}: unreadable configuration ({e})") from None
    config = data.get("config", data) if isinstance(data, dict) else data  # best_config.json, or a bare TrainConfig
    if not isinstance(config, dict):
        got = {type(None): "null", list: "a list", str: "a string"}.get(type(config), type(config).__name__)
        raise ConfigError(f"{location}: a configuration maps training option names to values (got {got})")
    try:
        return TrainConfig.from_dict(config)
    except ConfigError as e:
        raise ConfigError(f"{location}: {e.message}") from None
