"""Where each stage reads and writes inside an experiment directory (local path or URI)."""

from __future__ import annotations

import os

from sertune import fsutil
from sertune.experiment import DEFAULT_EXPERIMENT_DIR


def experiment_dir(location: str | None = None) -> str:
    return fsutil.normalize(location or os.environ.get("SERTUNE_EXPERIMENT_DIR") or DEFAULT_EXPERIMENT_DIR)


def tune_dir(exp: str) -> str:
    return fsutil.join(exp, "tune")


def best_config(exp: str) -> str:
    return fsutil.join(exp, "tune", "best_config.json")


def tune_trials(exp: str) -> str:
    return fsutil.join(exp, "tune", "trials.parquet")


def tune_curves(exp: str) -> str:
    """Every tune trial's validation UAR per epoch (the search picture's data)."""
    return fsutil.join(exp, "tune", "curves.parquet")


def tune_figure(exp: str) -> str:
    return fsutil.join(exp, "tune", "search.png")


def sweep_dir(exp: str) -> str:
    return fsutil.join(exp, "sweep")


def sweep_results(exp: str) -> str:
    return fsutil.join(exp, "sweep", "results.parquet")


def report_dir(exp: str) -> str:
    return fsutil.join(exp, "report")


def sweep_models(exp: str, n_att: int) -> str:
    return fsutil.join(exp, "sweep", "models", f"n_att={int(n_att)}")


def sweep_model(exp: str, n_att: int, seed: int) -> str:
    """A sweep trial's model.pt, next to its row (sertune.insight.models)."""
    return fsutil.join(sweep_models(exp, n_att), f"seed={int(seed)}", "model.pt")
