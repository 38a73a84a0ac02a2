"""bf16 against fp32 at one configuration: seconds per epoch, and test UAR over paired seeds.

    python benchmarks/precision.py --store STORE --config docs/results/authors-5fold-tuned/best_config.json
    python benchmarks/precision.py --store STORE --config CFG --seeds 5 --paired-results sweep/results.parquet
    python benchmarks/precision.py --data synthetic --epochs 4 --seeds 2        # smoke test

Speed: `--timing-epochs` epochs of the configuration in each precision, alternated (fp32, bf16,
fp32, bf16, ...) so that drift in the machine's load falls on both; the figure is the median
epoch time (sertune's epoch_time_s: every fold trains once and validates). fp32 is the plain
baseline: the same code with autocast off.

Accuracy: for seeds 0..--seeds-1, the full run in bf16 and in fp32 with the same seed: the same
initial weights, batches and dropout masks, so the difference is the precision's alone (plus
where it makes the trajectories part). fp32 runs that a sweep already made at this configuration
are read from `--paired-results` (rows whose configuration differs only in precision) instead of
being run again. Prints each seed's pair, the mean paired difference and its 95 % t interval.
Needs a CPU with a bfloat16 LSTM kernel (AVX512-BF16 or AMX) or a GPU; elsewhere it says so and
exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REAL_DATA, add_store_args, median, store_from_args, table  # noqa: E402

from sertune.config import RUNTIME_FIELDS, TrainConfig  # noqa: E402
from sertune.errors import ConfigError  # noqa: E402
from sertune.store.load import load_store  # noqa: E402
from sertune.training.loop import check_precision, pick_device, train  # noqa: E402


def base_config(args) -> TrainConfig:
    if args.config:
        data = json.loads(Path(args.config).read_text())
        cfg = TrainConfig.from_dict(data.get("config", data))
    else:
        cfg = TrainConfig()
    changes = {"threads": args.threads, "device": args.device, "n_att": args.n_att}
    if args.epochs:
        changes["epochs"] = args.epochs
    return cfg.replace(**changes, precision="fp32")


def timing(fs, cfg: TrainConfig, epochs: int) -> dict[str, float]:
    """Median s/epoch per precision, the two alternated run by run."""
    times = {"fp32": [], "bf16": []}
    for _ in range(2):
        for precision in times:
            run = train(cfg.replace(precision=precision, epochs=epochs), fs)
            times[precision] += [h["epoch_time_s"] for h in run.history[1:]]  # the first carries set-up
    return {k: median(v) for k, v in times.items()}


def paired_fp32(location: str | None, cfg: TrainConfig) -> dict[int, float]:
    """Seed -> test UAR of fp32 runs at ``cfg`` (any seed) in a results table."""
    if not location:
        return {}
    from sertune import results

    df = results.read_results(location)
    want = {k: v for k, v in cfg.to_dict().items() if k not in (*RUNTIME_FIELDS, "seed")}
    out = {}
    for row in df.to_dict("records"):
        have = TrainConfig.from_dict(json.loads(row["config"]) if isinstance(row["config"], str) else row["config"])
        if {k: v for k, v in have.to_dict().items() if k not in (*RUNTIME_FIELDS, "seed")} == want:
            out[int(row["seed"])] = float(row["uar"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_args(ap, str(REAL_DATA))
    ap.add_argument("--config", help="a TrainConfig or best_config.json (default: sertune's defaults)")
    ap.add_argument("--epochs", type=int, default=0, help="epochs of the full runs (default: the configuration's)")
    ap.add_argument("--timing-epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3, help="paired seeds 0..N-1 (0: speed only)")
    ap.add_argument("--n-att", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--paired-results", help="a results table holding fp32 runs of this configuration")
    args = ap.parse_args()
    cfg = base_config(args)
    try:
        check_precision("bf16", pick_device(cfg.device))
    except ConfigError as e:
        print(f"summary: not measured: {e.message}")
        return
    with tempfile.TemporaryDirectory(prefix="sertune-bench-") as tmp:
        fs = load_store(store_from_args(args, Path(tmp)))

    spe = timing(fs, cfg, args.timing_epochs)
    print(f"\n{len(fs)} utterances, {args.timing_epochs} epochs x 2 per precision, {cfg.threads} thread(s), "
          f"n_att {cfg.n_att}, batch {cfg.batch_size}, device {cfg.device}")
    print(table(["precision", "s/epoch", "÷ fp32"], [[p, t, t / spe["fp32"]] for p, t in spe.items()]))

    known, rows, diffs = paired_fp32(args.paired_results, cfg), [], []
    for seed in range(args.seeds):
        run = cfg.replace(seed=seed)
        bf16 = train(run.replace(precision="bf16"), fs).uar
        fp32, where = (known[seed], "table") if seed in known else (train(run, fs).uar, "run")
        diffs.append(bf16 - fp32)
        rows.append([str(seed), fp32, where, bf16, f"{bf16 - fp32:+.4f}"])
        print(f"seed {seed}: fp32 {fp32:.4f} ({where}), bf16 {bf16:.4f}", flush=True)
    line = f"summary: bf16 s/epoch {spe['bf16'] / spe['fp32']:.2f} x fp32"
    if rows:
        print(table(["seed", "fp32 UAR", "fp32 from", "bf16 UAR", "bf16 - fp32"], rows))
        d = np.array(diffs)
        if len(d) > 1 and d.std(ddof=1) > 0:
            ci = stats.ttest_1samp(d, 0).confidence_interval(0.95)
            line += f"; test UAR bf16 - fp32 {d.mean():+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] over {len(d)} paired seeds"
        else:
            line += f"; test UAR bf16 - fp32 {d.mean():+.4f} over {len(d)} paired seed(s)"
    print(line)


if __name__ == "__main__":
    main()
