"""Sweep throughput: `run_sweep` on Ray Tune against Σ trial time ÷ slots, and against a plain
sequential loop over the same (n_att, seed) grid.

    python benchmarks/sweep.py                                          # built-in corpus, 4 x 2 trials
    python benchmarks/sweep.py --n-att 1,2 --seeds 1 --epochs 1        # smoke test
    python benchmarks/sweep.py --data ../shared/data/ravdess-speech-16k --epochs 20

Figures:
  wall        seconds from calling run_sweep (Ray already up) until it returns
  Σ trial     sum of the trials' own wall_time_s (training only, as recorded in the results table)
  slots       trials that can run at once: Ray's CPUs ÷ cpus_per_trial, capped by GPUs ÷ gpus_per_trial
              and by the number of trials (so on a CPU box with enough trials: Ray's CPU count)
  overhead    wall ÷ (Σ trial ÷ slots) − 1: what Ray Tune costs beyond perfect packing (target <= 10 %);
              it includes starting a worker per trial and each worker loading the store
  trials/h    trials ÷ wall
The sequential row trains the same grid in this process, one after another (threads=1), store
loaded once; its slots are 1. On a GPU, the grid runs again with 1, 0.5, 0.25 and 0.125 GPUs per
trial: the trials/h column says how many trials per GPU pays best.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SYNTHETIC, add_store_args, store_from_args, table  # noqa: E402

from sertune import ray_runtime, results  # noqa: E402
from sertune.config import TrainConfig  # noqa: E402
from sertune.store.load import load_store  # noqa: E402
from sertune.experiment import SweepSettings
from sertune.trials.sweep import run_sweep  # noqa: E402
from sertune.training.loop import train  # noqa: E402

GPU_FRACTIONS = (1, 0.5, 0.25, 0.125)


def row(name: str, n: int, wall: float, total: float, slots: int) -> list:
    return [name, n, wall, total, slots, f"{100 * (wall / (total / slots) - 1):+.1f}%", n / wall * 3600]


def ray_sweep(store: str, exp: Path, base: TrainConfig, s: SweepSettings) -> tuple[float, float]:
    """(wall, Σ trial time) of one sweep into a fresh experiment directory."""
    t0 = time.perf_counter()
    _, location = run_sweep(store, str(exp), base, s)
    wall = time.perf_counter() - t0
    return wall, float(results.read_results(location)["wall_time_s"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_args(ap, SYNTHETIC)
    ap.add_argument("--n-att", default="1,4,16,64", help="comma-separated N_att values")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    n_att = tuple(int(a) for a in args.n_att.split(","))
    n = len(n_att) * args.seeds
    # threads=1 everywhere: one core per trial in Ray, and the sequential loop gets the same.
    base = TrainConfig(epochs=args.epochs, threads=1, device="cpu")
    rows = []

    with tempfile.TemporaryDirectory(prefix="sertune-bench-") as tmp:
        tmp = Path(tmp)
        store = store_from_args(args, tmp)
        with ray_runtime.connect():
            cpus, gpus = ray_runtime.cluster_cpus(), ray_runtime.cluster_gpus()
            wall, total = ray_sweep(store, tmp / "exp-cpu", base, SweepSettings(n_att=n_att, seeds=args.seeds))
            rows.append(row("ray, 1 CPU/trial", n, wall, total, min(cpus, n)))
            if torch.cuda.is_available() and gpus:
                for g in GPU_FRACTIONS:
                    s = SweepSettings(n_att=n_att, seeds=args.seeds, cpus_per_trial=1, gpus_per_trial=g)
                    wall, total = ray_sweep(store, tmp / f"exp-gpu-{g}", base.replace(device="cuda"), s)
                    rows.append(row(f"ray, {g} GPU/trial", n, wall, total, min(cpus, int(gpus / g), n)))

        # After Ray has shut down, so its idle workers take nothing from the sequential loop.
        t0 = time.perf_counter()
        fs = load_store(store)
        total = sum(train(base.replace(n_att=a, seed=s), fs).wall_time_s for a in n_att for s in range(args.seeds))
        seq_wall = time.perf_counter() - t0
        rows.append(row("sequential, in-process", n, seq_wall, total, 1))

    print(f"\n{n} trials (n_att {args.n_att} x {args.seeds} seed(s), {args.epochs} epoch(s)); "
          f"Ray saw {cpus} CPU(s), {gpus:g} GPU(s)")
    print(table(["run", "trials", "wall s", "Σ trial s", "slots", "overhead", "trials/h"], rows))
    ray_wall = rows[0][2]
    print(f"summary: Ray overhead {rows[0][5]} over Σ trial ÷ {rows[0][4]} (target <= +10%); "
          f"{seq_wall / ray_wall:.2f} x the sequential loop's throughput "
          f"({rows[0][6]:.0f} vs {rows[-1][6]:.0f} trials/h)")


if __name__ == "__main__":
    main()
