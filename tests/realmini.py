"""A small real-RAVDESS store (6 actors) and one model trained on it by a real sweep trial,
made once per test session and shared by test_predict and test_explain."""

from __future__ import annotations

import shutil
from pathlib import Path

ACTORS = range(1, 7)  # 3 male, 3 female: the speaker split's 6 groups, one actor each


def mini_store(real_16k: Path, base: Path) -> str:
    store = base / "real-mini-store"
    if not store.exists():
        corpus = base / "real-mini-corpus"  # a copy in the test's temp dir only, never in the repo
        for a in ACTORS:
            shutil.copytree(real_16k / f"Actor_{a:02d}", corpus / f"Actor_{a:02d}")
        from sertune.config import FeatureConfig
        from sertune.store.build import build_store, plan_build, serial_runner

        build_store(plan_build(str(corpus), str(store), FeatureConfig(), False), serial_runner)
    return str(store)


def swept_experiment(store: str, base: Path) -> Path:
    """A one-pair sweep (N_att = 4, seed 0, 2 epochs, hidden 8): its trial keeps model.pt."""
    exp = base / "real-mini-exp"
    if not (exp / "sweep" / "results.parquet").exists():
        from sertune.config import TrainConfig
        from sertune.experiment import SweepSettings
        from sertune.trials.sweep import run_sweep

        cfg = TrainConfig(epochs=2, hidden_size=8, threads=1, batch_size=16)
        run_sweep(store, str(exp), cfg, SweepSettings(n_att=(4,), seeds=1, cpus_per_trial=1))
    return exp
