"""The Tuner set-up both stages share: the trainable with its fixed inputs and resources,
failure and checkpoint configuration, and the one-line summary of why trials failed."""

from __future__ import annotations

from ray import tune

from sertune.experiment import TrialResources
from sertune.trials.trainable import TrialInputs, train_trial


def trainable(inputs: TrialInputs, resources: TrialResources):
    with_inputs = tune.with_parameters(train_trial, inputs=inputs)
    return tune.with_resources(with_inputs, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


def run_config(name: str, storage_path: str, resources: TrialResources, callbacks=(), verbose: int = 1) -> tune.RunConfig:
    return tune.RunConfig(
        name=name, storage_path=storage_path, verbose=verbose, callbacks=list(callbacks),
        failure_config=tune.FailureConfig(max_failures=resources.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
    )


def make_tuner(inputs: TrialInputs, resources: TrialResources, param_space: dict, tune_config: tune.TuneConfig,
               name: str, storage_path: str, callbacks=(), verbose: int = 1) -> tune.Tuner:
    return tune.Tuner(trainable(inputs, resources), param_space=param_space, tune_config=tune_config,
                      run_config=run_config(name, storage_path, resources, callbacks, verbose))


def restore(path: str, inputs: TrialInputs, resources: TrialResources) -> tune.Tuner:
    """Continue a saved experiment: unfinished and errored trials run on from their checkpoints."""
    return tune.Tuner.restore(path, trainable(inputs, resources), resume_unfinished=True, resume_errored=True)


def first_error(grid) -> str | None:
    """The last line of the first failed trial's error, or None if no trial failed."""
    errors = [str(r.error).strip().splitlines()[-1] for r in grid if r.error is not None]
    return f"{len(errors)} failed, first: {errors[0]}" if errors else None
