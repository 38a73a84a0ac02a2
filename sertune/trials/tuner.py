"""The Tuner set-up both stages share: the trainable with its fixed inputs and resources,
failure and checkpoint configuration, how a run is watched (callbacks, Ray's reporter or
sertune's live view), and the one-line summary of why trials failed."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil

from ray import tune

from sertune import fsutil
from sertune.experiment import TrialResources
from sertune.trials.trainable import TrialInputs, train_trial


def trainable(inputs: TrialInputs, resources: TrialResources):
    with_inputs = tune.with_parameters(train_trial, inputs=inputs)
    return tune.with_resources(with_inputs, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


def run_config(name: str, storage_path: str, resources: TrialResources) -> tune.RunConfig:
    # Every checkpoint is kept while trials run (num_to_keep=None): with num_to_keep=N Tune forces
    # an experiment snapshot whenever a trial has saved N checkpoints, several a second in a fast
    # sweep. Trials checkpoint every `checkpoint_every` epochs; `prune_checkpoints` removes the
    # superseded ones once the run's final snapshot is written.
    return tune.RunConfig(
        name=name, storage_path=storage_path, verbose=0,
        failure_config=tune.FailureConfig(max_failures=resources.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
    )


def make_tuner(inputs: TrialInputs, resources: TrialResources, param_space: dict, tune_config: tune.TuneConfig,
               name: str, storage_path: str) -> tune.Tuner:
    return tune.Tuner(trainable(inputs, resources), param_space=param_space, tune_config=tune_config,
                      run_config=run_config(name, storage_path, resources))


def restore(path: str, inputs: TrialInputs, resources: TrialResources) -> tune.Tuner:
    """Continue a saved experiment: unfinished and errored trials run on from their checkpoints."""
    return tune.Tuner.restore(path, trainable(inputs, resources), resume_unfinished=True, resume_errored=True)


def fit(tuner: tune.Tuner, callbacks=(), verbose: bool = False):
    """``tuner.fit()`` watched by ``callbacks``; Ray's own reporter only when ``verbose``.
    Callbacks are set here rather than in the Tuner's RunConfig, which Tune pickles into the
    experiment (and gives back, stale, on a restore)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from sertune.trials.tracking import PlainTensorBoard

    config = tuner._local_tuner.get_run_config()  # the same object for a new and a restored Tuner
    config.callbacks = [JsonLoggerCallback(), CSVLoggerCallback(), PlainTensorBoard(), *callbacks]
    config.verbose = 2 if verbose else 0
    # The new reporter draws tables and error boxes even at verbose=0; the old one is silent at 0.
    with _environ("RAY_AIR_NEW_OUTPUT", None if verbose else "0"):
        grid = tuner.fit()
    prune_checkpoints(grid)
    return grid


@contextlib.contextmanager
def _environ(name: str, value: str | None):
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def prune_checkpoints(grid) -> None:
    """Keep only the newest checkpoint of each trial the saved experiment calls TERMINATED (a
    restore never loads those). Unfinished or failed trials keep every checkpoint: after an
    interrupt a trial may have written a checkpoint the snapshot does not know, and the one it
    does know is what a restore loads. Local experiments only; on object stores all stay."""
    import pyarrow.fs as pafs

    if not isinstance(grid.filesystem, pafs.LocalFileSystem):  # experiment_path has no scheme there
        return
    for trial in tune.ExperimentAnalysis(grid.experiment_path).trials:
        if trial.status == "TERMINATED":
            for old in sorted(glob.glob(os.path.join(trial.path, "checkpoint_*")))[:-1]:
                shutil.rmtree(old, ignore_errors=True)


def first_error(grid) -> str | None:
    """The last line of the first failed trial's error, or None if no trial failed."""
    errors = [str(r.error).strip().splitlines()[-1] for r in grid if r.error is not None]
    return f"{len(errors)} failed, first: {errors[0]}" if errors else None
