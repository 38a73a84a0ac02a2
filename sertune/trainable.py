"""The Ray Tune side of a training run: the same `train()` as `sertune train`, plus reporting
and checkpoints so that ASHA can stop it and a failed trial resumes where it left off."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import socket
import tempfile

import torch
from ray import tune

from sertune import results
from sertune.config import TUNED_KNOBS, TrainConfig
from sertune.store import FeatureSet, load_store, read_manifest
from sertune.train import Training, TrainResult, train

STATE_FILE = "training.pt"


def cached_store(store: str) -> FeatureSet:
    """Each worker process reads a store once, then every trial it runs reuses it; keyed by
    the store's hash too, so a store rebuilt at the same path is read afresh."""
    return _load(store, read_manifest(store)["store_hash"])


@functools.lru_cache(maxsize=2)
def _load(store: str, store_hash: str) -> FeatureSet:
    return load_store(store)


def trial_config(config: dict) -> TrainConfig:
    """Fixed options under "train", the searched or swept ones at the top level."""
    swept = {k: config[k] for k in (*TUNED_KNOBS, "n_att", "seed") if k in config}
    if "pair" in config:
        swept["n_att"], swept["seed"] = config["pair"]
    return TrainConfig.from_dict({**config["train"], **swept})


def _reporter(every: int, epochs: int):
    def on_epoch(metrics: dict, run: Training) -> None:
        if run.epoch % every and run.epoch != epochs:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(run.state_dict(), os.path.join(d, STATE_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    return on_epoch


def _resume_state() -> dict | None:
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(os.path.join(d, STATE_FILE), weights_only=False)


def train_trial(config: dict) -> None:
    """Function trainable: one training run; with ``config["row"]`` it ends by reporting its
    results row (the sweep writes that row into the results table)."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per report drowns the table
    cfg = trial_config(config)
    fs = cached_store(config["store"])
    result = train(cfg, fs, _reporter(config.get("checkpoint_every", 5), cfg.epochs), _resume_state())
    if config.get("row"):
        row = result_row(cfg, result, fs.store_hash, config.get("code_version", "unknown"))
        tune.report({"best_val_uar": result.val_uar, "row": json.dumps(row)})


def result_row(cfg: TrainConfig, r: TrainResult, store_hash: str, code_version: str) -> dict:
    row = {
        "n_att": cfg.n_att, "seed": cfg.seed, "uar": r.uar, "val_uar": r.val_uar,
        "best_epoch": r.best_epoch, "epochs": r.epochs,
        "confusion": json.dumps(r.confusion),
        "config": cfg.to_json(), "protocol": json.dumps(r.protocol, sort_keys=True),
        "store_hash": store_hash, "code_version": code_version,
        "node": socket.gethostname() + "/" + _node_ip(), "wall_time_s": r.wall_time_s,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    row.update({c: v for c, v in zip(results.RECALL_COLUMNS, r.recall)})
    return row


def _node_ip() -> str:
    try:
        import ray.util

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (sertune train) there is no node to name
        return "local"
