"""The store and the experiment on S3 against a local disk, same run: store build (`prepare` on
Ray), store load (`load_store`) and a short sweep (`run_sweep`), each on a local folder and on a
local S3-compatible server (moto's, on 127.0.0.1; moto is in the `test` extra).

    python benchmarks/s3.py                                    # real RAVDESS (1440 files) if present
    python benchmarks/s3.py --data synthetic --actors 6       # the built-in corpus
    python benchmarks/s3.py --endpoint http://127.0.0.1:9000  # another server (MinIO), its bucket must exist

Figures (seconds, median of --repeat runs for load; one run each for build and sweep):
  build   `sertune prepare` into an empty location (Ray already up, MFCC in Ray tasks)
  load    `load_store` of the whole store: manifest, shards read and padded into tensors
  sweep   `run_sweep` of --n-att x --seeds at --epochs into a fresh experiment directory:
          Tune's checkpoints, state and the results table all go to the location
moto keeps objects in memory and speaks plain HTTP on loopback: the S3 column is what the S3
protocol (requests, multipart uploads, listing) costs, not a network's latency or bandwidth.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # the tests' moto server on loopback, not a copy of it
from _common import REAL_DATA, SYNTHETIC, corpus, median, table  # noqa: E402
from s3tools import moto_server, s3_env  # noqa: E402


@contextlib.contextmanager
def s3_endpoint(endpoint: str | None):
    """An S3 endpoint URL: the one given, else moto's server in a thread of this process."""
    if endpoint:
        yield endpoint
        return
    with moto_server() as url:
        yield url


def measure(root: str, data: str, args) -> list:
    """[build, load, sweep] seconds with everything under ``root`` (a folder or an s3:// URI)."""
    from sertune import fsutil
    from sertune.config import FeatureConfig, TrainConfig
    from sertune.experiment import SweepSettings
    from sertune.store.load import load_store
    from sertune.store.prepare import prepare
    from sertune.trials.sweep import run_sweep

    store, exp = fsutil.join(root, "store"), fsutil.join(root, "exp")
    t0 = time.perf_counter()
    prepare(data, store, FeatureConfig(), progress=False)
    build = time.perf_counter() - t0
    loads = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        load_store(store)
        loads.append(time.perf_counter() - t0)
    base = TrainConfig(epochs=args.epochs, batch_size=64, threads=1)
    settings = SweepSettings(n_att=tuple(int(a) for a in args.n_att.split(",")), seeds=args.seeds)
    t0 = time.perf_counter()
    run_sweep(store, exp, base, settings)
    return [build, median(loads), time.perf_counter() - t0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REAL_DATA) if REAL_DATA.is_dir() else SYNTHETIC,
                    help=f"corpus folder or '{SYNTHETIC}' (default: the real RAVDESS if present)")
    ap.add_argument("--actors", type=int, default=8, help="actors of the built-in corpus")
    ap.add_argument("--endpoint", help="an S3 endpoint to use instead of starting moto")
    ap.add_argument("--bucket", default="sertune-bench")
    ap.add_argument("--repeat", type=int, default=5, help="store loads per location")
    ap.add_argument("--n-att", default="1,2")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--num-cpus", type=int, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, s3_endpoint(args.endpoint) as endpoint:
        for k, v in s3_env(endpoint).items():  # moto takes any key; a real server's come from the environment
            os.environ[k] = v if k in ("AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED") else os.environ.get(k, v)
        if not args.endpoint:
            import boto3

            boto3.client("s3").create_bucket(Bucket=args.bucket)
        data = corpus(args.data, Path(tmp), args.actors)
        from sertune import ray_runtime

        # Ray's workers inherit this process's environment at ray.init: the S3 variables are set above.
        with ray_runtime.connect(num_cpus=args.num_cpus):
            run = uuid.uuid4().hex[:8]
            local = measure(str(Path(tmp) / "local"), data, args)
            s3 = measure(f"s3://{args.bucket}/{run}", data, args)
    pairs = len(args.n_att.split(",")) * args.seeds
    print(f"corpus {data}; sweep {pairs} trials x {args.epochs} epochs; S3 endpoint {endpoint}")
    rows = [[name, lo, s, f"{s / lo:.2f}x"] for name, lo, s in zip(("build", "load", "sweep"), local, s3)]
    print(table(["stage", "local disk s", "S3 s", "S3 / local"], rows))
    print("summary: S3 / local disk " + ", ".join(f"{r[0]} {r[3]}" for r in rows))


if __name__ == "__main__":
    main()
