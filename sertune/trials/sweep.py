"""`sertune sweep`: the N_att x seeds grid at a fixed configuration, as Ray Tune trials.

The results table is the source of truth: each finished trial's row is appended the moment it
reports, so a killed driver loses only trials in flight, and a rerun runs only missing pairs.
A trial whose worker dies is retried from its last checkpoint (FailureConfig).
"""

from __future__ import annotations

import datetime as dt
import json

from ray import tune

from sertune import fsutil, locks, paths, predictions, results
from sertune.config import TrainConfig
from sertune.errors import TrialError
from sertune.experiment import SweepSettings, differences
from sertune.provenance import code_version
from sertune.store.schema import read_manifest
from sertune.trials import tracking, tuner
from sertune.trials.progress import LiveView
from sertune.trials.trainable import TrialInputs

SWEPT = ("n_att", "seed")


class ResultsWriter(tune.Callback):
    """Appends a trial's row to the results table as soon as the trial reports it."""

    def __init__(self, location: str):
        self.location = location

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "row" in result:
            results.append_rows(self.location, [json.loads(result["row"])])


def pending_pairs(location: str, s: SweepSettings) -> list[tuple[int, int]]:
    done = results.done_pairs(location)
    return [pair for pair in s.pairs() if pair not in done]


def run_sweep(store: str, exp: str, base: TrainConfig, s: SweepSettings, results_path: str | None = None,
              watch: tracking.Watch = tracking.Watch()) -> tuple[int, str]:
    """Run every missing (n_att, seed) pair; returns (how many ran, results location)."""
    location = results_path or paths.sweep_results(exp)
    with locks.hold(fsutil.with_suffix(location, ".sweep"), "a sweep writing this results table", TrialError):
        return _run_sweep(store, exp, base, s, location, watch)


def _run_sweep(store: str, exp: str, base: TrainConfig, s: SweepSettings, location: str,
               watch: tracking.Watch) -> tuple[int, str]:
    store_hash = read_manifest(store)["store_hash"]
    check_same_experiment(location, store_hash, base)
    todo = pending_pairs(location, s)
    if not todo:
        return 0, location
    inputs = TrialInputs(store=fsutil.normalize(store), base=base, checkpoint_every=s.checkpoint_every,
                         code_version=code_version(), emit_row=True, experiment_dir=exp,
                         predictions_dir=predictions.default_location(location))
    callbacks = [ResultsWriter(location)]  # first: a row is in the table before anything reports it
    if not watch.verbose:
        callbacks.append(LiveView("sweep", len(todo), base.epochs, watch.log_path, watch.tty, pairs=todo))
    callbacks += tracking.mlflow_callback(watch, exp, "sweep", base, store_hash, inputs.code_version, location)
    with fsutil.storage_errors(paths.sweep_dir(exp)):  # Tune's own reads and writes of the experiment
        sweep = tuner.make_tuner(
            inputs, s, {"pair": tune.grid_search([list(p) for p in todo])},
            tune.TuneConfig(metric="best_val_uar", mode="max", reuse_actors=True),
            name="sweep-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S"), storage_path=paths.sweep_dir(exp),
        )
        grid = tuner.fit(sweep, callbacks, watch.verbose)
    missing = pending_pairs(location, s)
    if missing:
        error = tuner.first_error(grid)
        why = f"failed after retries ({error})" if error else "did not finish (interrupted?)"
        raise TrialError(f"{len(missing)} of {len(todo)} sweep trials {why}; rerun the same command to run them")
    return len(todo), location


def check_same_experiment(location: str, store_hash: str, base: TrainConfig) -> None:
    """Mixing rows of another store or configuration into one table would corrupt the comparison."""
    if not fsutil.exists(location):
        return
    df = results.read_results(location)
    hashes = set(df["store_hash"])
    if hashes - {store_hash}:
        raise TrialError(f"{location}: holds results for store(s) {sorted(hashes)}, not {store_hash}; "
                         "use another --experiment-dir or --results")
    want = base.identity(exclude=SWEPT)
    for cfg in {json.dumps(c, sort_keys=True): c for c in results.configs(df, location)}.values():
        # Through TrainConfig, so rows written before an option existed read as its default.
        have = TrainConfig.from_dict(cfg).identity(exclude=SWEPT)
        diff = differences(have, want)
        if diff:
            raise TrialError(f"{location}: holds results of another configuration (differs in {', '.join(diff)}); "
                             "use another --experiment-dir or --results")
