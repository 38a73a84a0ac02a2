"""The Ray Tune side of a training run: the same `train()` as `sertune train`, plus reporting
and checkpoints so that ASHA can stop it and a failed trial resumes where it left off.

Fixed inputs arrive through ``tune.with_parameters`` as one ``TrialInputs``; Tune's ``config``
holds only what is searched (tune's knobs) or swept (sweep's ``pair``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass

import ray.util
import torch
from ray import tune

from sertune import paths, predictions, results
from sertune.config import TrainConfig
from sertune.errors import TrialError
from sertune.insight.models import save_model
from sertune.store.load import cached_store
from sertune.training.loop import Training, train

STATE_FILE = "training.pt"


@dataclass(frozen=True)
class TrialInputs:
    store: str  # absolute path or URI
    base: TrainConfig  # everything not searched or swept
    checkpoint_every: int
    code_version: str
    emit_row: bool = False  # sweep trials end by reporting their results row
    experiment_dir: str | None = None  # sweep trials keep their model.pt there (paths.sweep_model)
    predictions_dir: str | None = None  # sweep trials write their per-utterance predictions there (sertune.predictions)


def trial_config(config: dict, base: TrainConfig) -> TrainConfig:
    """The base configuration with the searched or swept values of one trial."""
    chosen = {k: v for k, v in config.items() if k != "pair"}
    if "pair" in config:
        chosen["n_att"], chosen["seed"] = config["pair"]
    return TrainConfig.from_dict({**base.to_dict(), **chosen})


def train_trial(config: dict, inputs: TrialInputs) -> None:
    """Function trainable: one training run; a sweep trial ends by reporting its results row
    (the sweep's callback writes that row into the results table)."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per report drowns the table
    cfg = trial_config(config, inputs.base)
    fs = cached_store(inputs.store)
    result = train(cfg, fs, _reporter(inputs.checkpoint_every, cfg.epochs), _resume_state())
    if inputs.experiment_dir:  # before the row: a row in the table always has its model
        save_model(paths.sweep_model(inputs.experiment_dir, cfg.n_att, cfg.seed), result.checkpoint, inputs.store)
    if inputs.predictions_dir:  # and its predictions
        predictions.write_run(inputs.predictions_dir, cfg.n_att, cfg.seed, result.predictions)
    if inputs.emit_row:
        row = results.result_row(cfg, result, fs.manifest, inputs.code_version, ray.util.get_node_ip_address())
        tune.report({"best_val_uar": result.val_uar, "row": json.dumps(row)})


def _reporter(every: int, epochs: int):
    def on_epoch(metrics: dict, run: Training) -> None:
        if run.epoch % every and run.epoch != epochs:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            save_state(run, d)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    return on_epoch


def _resume_state() -> dict | None:
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return load_state(d)


def save_state(run: Training, directory: str) -> None:
    """The run's state: tensors (weights, optimiser moments, RNG states) and plain values only,
    so that `load_state` can refuse everything else."""
    torch.save(run.state_dict(), os.path.join(directory, STATE_FILE))


def load_state(directory: str) -> dict:
    """A state `save_state` wrote. weights_only: unpickling anything but tensors and plain values
    would run whatever code a replaced file names, in every worker that resumes from it."""
    path = os.path.join(directory, STATE_FILE)
    try:
        return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise TrialError(f"{path}: not a training state sertune wrote ({type(e).__name__}); not loaded, "
                         "as it may hold code (an experiment directory is trusted storage)") from None
