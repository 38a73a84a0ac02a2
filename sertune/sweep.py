"""`sertune sweep`: the N_att x seeds grid at a fixed configuration, as Ray Tune trials.

The results table is the source of truth: each finished trial's row is appended the moment it
reports, so a killed driver loses only trials in flight, and a rerun runs only missing pairs.
A trial whose worker dies is retried from its last checkpoint (FailureConfig).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from ray import tune

from sertune import fsutil, paths, results
from sertune.config import TrainConfig
from sertune.errors import TrialError
from sertune.provenance import code_version
from sertune.store import read_manifest
from sertune.trainable import train_trial
from sertune.tuning import trial_resources

DEFAULT_N_ATT = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class SweepSettings:
    n_att: tuple[int, ...] = DEFAULT_N_ATT
    seeds: int = 10
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_failures: int = 3
    checkpoint_every: int = 5


class ResultsWriter(tune.Callback):
    """Appends a trial's row to the results table as soon as the trial reports it."""

    def __init__(self, location: str):
        self.location = location

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "row" in result:
            results.append_rows(self.location, [json.loads(result["row"])])


def pending_pairs(location: str, s: SweepSettings) -> list[tuple[int, int]]:
    done = results.done_pairs(location)
    return [(a, seed) for a in s.n_att for seed in range(s.seeds) if (a, seed) not in done]


def run_sweep(store: str, exp: str, base: TrainConfig, s: SweepSettings, results_path: str | None = None,
              verbose: int = 1) -> tuple[int, str]:
    """Run every missing (n_att, seed) pair; returns (how many ran, results location)."""
    manifest = read_manifest(store)
    location = results_path or paths.sweep_results(exp)
    if results.done_pairs(location):
        _check_same_experiment(location, manifest["store_hash"], base)
    todo = pending_pairs(location, s)
    if not todo:
        return 0, location
    trainable = tune.with_resources(train_trial, trial_resources(s.cpus_per_trial, s.gpus_per_trial))
    name = "sweep-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    grid = tune.Tuner(
        trainable,
        param_space={"store": fsutil.normalize(store), "train": base.to_dict(), "row": True, "code_version": code_version(),
                     "checkpoint_every": s.checkpoint_every, "pair": tune.grid_search([list(p) for p in todo])},
        tune_config=tune.TuneConfig(metric="best_val_uar", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=paths.sweep_dir(exp), verbose=verbose, callbacks=[ResultsWriter(location)],
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    ).fit()
    missing = pending_pairs(location, s)
    if missing:
        errors = [str(r.error).strip().splitlines()[-1] for r in grid if r.error is not None]
        why = f"failed after retries (first: {errors[0]})" if errors else "did not finish (interrupted?)"
        raise TrialError(f"{len(missing)} of {len(todo)} sweep trials {why}; rerun the same command to run them")
    return len(todo), location


def _check_same_experiment(location: str, store_hash: str, base: TrainConfig) -> None:
    """Mixing rows of another store or configuration into one table would corrupt the comparison."""
    df = results.read_results(location)
    hashes = set(df["store_hash"])
    if hashes != {store_hash}:
        raise TrialError(f"{location}: holds results for store(s) {sorted(hashes)}, not {store_hash}; "
                         "use another --experiment-dir or --results")
    ignore = {"n_att", "seed", "device", "threads"}
    want = {k: v for k, v in base.to_dict().items() if k not in ignore}
    for cfg_json in set(df["config"]):
        # Through TrainConfig, so rows written before an option existed read as its default.
        have = {k: v for k, v in TrainConfig.from_dict(json.loads(cfg_json)).to_dict().items() if k not in ignore}
        if have != want:
            diff = sorted(k for k in want if have.get(k) != want[k])
            raise TrialError(f"{location}: holds results of another configuration (differs in {', '.join(diff)}); "
                             "use another --experiment-dir or --results")
