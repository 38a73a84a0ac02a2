"""`sertune tune`: OptunaSearch (TPE) + ASHA over the N_att = 1 baseline, on validation UAR.

The objective is ``best_val_uar``, the running best validation UAR of a trial: it is what model
selection by best epoch keeps, and being monotone it gives ASHA a fair rung comparison.
Re-running the same command restores the experiment (searcher state included) and finishes it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from sertune import fsutil, paths
from sertune.config import TUNED_KNOBS, TrainConfig
from sertune.errors import ConfigError, TrialError
from sertune.provenance import code_version
from sertune.search_space import to_tune
from sertune.store import read_manifest
from sertune.trainable import train_trial

METRIC, MODE = "best_val_uar", "max"
NAME = "tune"


@dataclass(frozen=True)
class TuneSettings:
    num_samples: int = 20
    max_concurrent: int = 0  # 0: as many as the cluster fits
    grace_period: int = 10
    reduction_factor: int = 3
    search_seed: int = 0
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_failures: int = 2
    checkpoint_every: int = 5


def trial_resources(cpus: float, gpus: float) -> dict:
    return {"cpu": cpus, "gpu": gpus}


def _tuner(store: str, exp: str, base: TrainConfig, space: dict, s: TuneSettings, verbose: int) -> tune.Tuner:
    trainable = tune.with_resources(train_trial, trial_resources(s.cpus_per_trial, s.gpus_per_trial))
    path = fsutil.join(paths.tune_dir(exp), NAME)
    request = _request(store, base, space, s)
    if tune.Tuner.can_restore(path):
        _check_same_request(exp, request)
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    fsutil.write_bytes_atomic(_request_file(exp), json.dumps(request, indent=2, sort_keys=True).encode())
    searcher = OptunaSearch(metric=METRIC, mode=MODE, seed=s.search_seed)
    if s.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=base.epochs,
                              grace_period=min(s.grace_period, base.epochs), reduction_factor=s.reduction_factor)
    fixed = {k: v for k, v in base.to_dict().items() if k not in TUNED_KNOBS}
    return tune.Tuner(
        trainable,
        param_space={"store": store, "train": fixed, "checkpoint_every": s.checkpoint_every, **to_tune(space)},
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher, scheduler=scheduler,
                                    num_samples=s.num_samples, reuse_actors=True),
        run_config=tune.RunConfig(
            name=NAME, storage_path=paths.tune_dir(exp), verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def _request_file(exp: str) -> str:
    return fsutil.join(paths.tune_dir(exp), "request.json")


def _request(store: str, base: TrainConfig, space: dict, s: TuneSettings) -> dict:
    """What defines the experiment; resources and retries may change between runs."""
    runtime = {"device", "threads", "cpus_per_trial", "gpus_per_trial", "max_failures", "max_concurrent"}
    settings = {k: v for k, v in s.__dict__.items() if k not in runtime}
    train = {k: v for k, v in base.to_dict().items() if k not in runtime and k not in TUNED_KNOBS}
    store_hash = read_manifest(store)["store_hash"]  # a store rebuilt at the same path is another experiment
    return json.loads(json.dumps({"store": store, "store_hash": store_hash, "train": train, "space": space,
                                  "settings": settings}))


def _check_same_request(exp: str, request: dict) -> None:
    """Tuner.restore silently keeps the old settings: refuse a rerun that asks for others."""
    location = _request_file(exp)
    if not fsutil.exists(location):
        return
    old, new = _flatten(json.loads(fsutil.read_bytes(location))), _flatten(request)
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        raise ConfigError(f"{paths.tune_dir(exp)}: an unfinished or finished experiment with other settings "
                          f"exists (differs in {', '.join(diff)}); rerun it as it was or use another --experiment-dir")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _check_finished(grid, num_samples: int) -> None:
    """fit() also returns when interrupted (Ctrl-C): the saved experiment then holds unfinished
    trials, or fewer than asked for. Publishing a "best" of that would be wrong. The statuses in
    memory all read TERMINATED after an interrupt; those saved for a restore do not."""
    trials = tune.ExperimentAnalysis(grid.experiment_path).trials
    done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
    if done < len(trials) or len(trials) < num_samples:
        raise TrialError(f"tune stopped before the end ({done} of {num_samples} trials finished); "
                         "rerun the same command to continue it")


def run_tune(store: str, exp: str, base: TrainConfig, space: dict, s: TuneSettings, verbose: int = 1) -> dict:
    """Run (or resume) the search; write best_config.json and trials.parquet; return the best."""
    manifest = read_manifest(store)
    if base.n_att != 1:
        raise ConfigError("the tune stage tunes the N_att = 1 baseline")
    grid = _tuner(fsutil.normalize(store), exp, base, space, s, verbose).fit()
    _check_finished(grid, s.num_samples)
    ok = [r for r in grid if r.error is None and r.metrics and METRIC in r.metrics]
    if not ok:
        errors = [str(r.error).strip().splitlines()[-1] for r in grid if r.error is not None]
        raise TrialError(f"no tune trial finished ({len(errors)} failed: {errors[0] if errors else 'no results'})")
    best = grid.get_best_result(metric=METRIC, mode=MODE, scope="all")
    tuned = {k: best.config[k] for k in TUNED_KNOBS if k in best.config}
    config = TrainConfig.from_dict({**best.config["train"], **tuned})
    summary = {
        "config": config.to_dict(),
        "tuned": tuned,
        "best_val_uar": best.metrics[METRIC],
        "trial_id": best.metrics.get("trial_id"),
        "search_space": space,
        "settings": s.__dict__,
        "n_trials": len(grid),
        "n_errored": grid.num_errors,
        "store_hash": manifest["store_hash"],
        "code_version": code_version(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    fsutil.write_bytes_atomic(paths.best_config(exp), json.dumps(summary, indent=2).encode())
    _write_trials(grid, paths.tune_trials(exp))
    return summary


def _write_trials(grid, location: str) -> None:
    df = grid.get_dataframe()  # each trial's last result: training_iteration = epochs it ran before ASHA stopped it
    df = df.drop(columns=[c for c in df.columns if c.startswith("config/train") or c == "config/store"])
    for col in df.columns[df.dtypes == object]:
        df[col] = df[col].astype(str)  # mixed-type columns cannot go to Parquet as they are
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    fsutil.write_bytes_atomic(location, buf.getvalue())


def load_best_config(location: str) -> TrainConfig:
    if not fsutil.exists(location):
        raise ConfigError(f"{location}: no tuned configuration; run `sertune tune` first, or pass --config FILE or --no-tuned")
    try:
        data = json.loads(fsutil.read_bytes(location))
    except ValueError as e:
        raise ConfigError(f"{location}: unreadable configuration ({e})") from None
    return TrainConfig.from_dict(data.get("config", data))
