"""Feature extraction: `sertune prepare` (Ray tasks) against a plain sequential librosa loop.

    python benchmarks/features.py                      # the real corpus, 3 repeats
    python benchmarks/features.py --limit 48 --repeat 1   # smoke test

Figures, each the median of --repeat runs, in utterances/s and as a ratio to the faster of the two
sequential loops (target: sertune <= 0.5 x the sequential time):
  sequential      for each file librosa.load + librosa.feature.mfcc, same parameters as FeatureConfig()
  sequential 1T   the same with NumPy's BLAS held to one thread (Ray's workers run that way, and on a
                  busy machine a 2-thread BLAS pool can be several times slower on these small products)
  sertune cold    prepare() with Ray already running, first build of this Ray session (worker imports included)
  sertune warm    prepare(force=True) again in the same session: workers are warm
  sertune + start Ray start-up + cold build + Ray shutdown: what `sertune prepare` costs on a laptop
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import librosa

try:
    from threadpoolctl import threadpool_limits  # comes with scikit-learn, which librosa needs
except ImportError:  # then the "1T" row is simply the default again
    import contextlib

    def threadpool_limits(n):
        return contextlib.nullcontext()

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REAL_DATA, SYNTHETIC, corpus, median, table  # noqa: E402

from sertune import ray_runtime  # noqa: E402
from sertune.audio.corpus import scan  # noqa: E402
from sertune.config import FeatureConfig  # noqa: E402
from sertune.store.prepare import prepare  # noqa: E402


def sequential(paths: list[str], c: FeatureConfig) -> None:
    """The loop a user writes first; results are kept in memory only, as a fair lower bound."""
    out = []
    for p in paths:
        y, sr = librosa.load(p, sr=c.sample_rate)
        out.append(librosa.feature.mfcc(y=y, sr=sr, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop_length,
                                        win_length=c.win_length, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax))


def subset(data: str, n: int, tmp: Path) -> str:
    """The first ``n`` files of the corpus as symlinks in the same Actor_XX layout (for --limit)."""
    for p in scan(data)["path"][:n]:
        link = tmp / "subset" / Path(p).parent.name / Path(p).name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(p)
    return str(tmp / "subset")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REAL_DATA), help=f"corpus folder, or '{SYNTHETIC}' (default: {REAL_DATA})")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (smoke tests)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is reported")
    args = ap.parse_args()
    cfg = FeatureConfig()

    with tempfile.TemporaryDirectory(prefix="sertune-bench-") as tmp:
        tmp = Path(tmp)
        data = corpus(args.data, tmp)
        if args.limit:
            data = subset(data, args.limit, tmp)
        paths = scan(data)["path"].tolist()
        n, store = len(paths), str(tmp / "store")

        # One untimed file first: librosa's lazy imports and caches should not count against the
        # baseline (sertune's cold figure does pay its workers' imports; that makes this conservative).
        sequential(paths[:1], cfg)
        seq, seq1 = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sequential(paths, cfg)
            seq.append(time.perf_counter() - t0)
            with threadpool_limits(1):
                t0 = time.perf_counter()
                sequential(paths, cfg)
                seq1.append(time.perf_counter() - t0)

        cold, warm, total = [], [], []
        for _ in range(args.repeat):  # a fresh Ray each time, so every "cold" really is cold
            t0 = time.perf_counter()
            with ray_runtime.connect():
                t1 = time.perf_counter()
                prepare(data, store, cfg, force=True, progress=False)
                t2 = time.perf_counter()
                prepare(data, store, cfg, force=True, progress=False)
                t3 = time.perf_counter()
            t4 = time.perf_counter()
            cold.append(t2 - t1)
            warm.append(t3 - t2)
            total.append((t1 - t0) + (t2 - t1) + (t4 - t3))  # start-up + cold build + shutdown

    base = min(median(seq), median(seq1))  # compare against the better baseline
    rows = [[name, median(ts), n / median(ts), median(ts) / base]
            for name, ts in [("sequential librosa", seq), ("sequential 1T", seq1),
                             ("sertune cold", cold), ("sertune warm", warm),
                             ("sertune + Ray start", total)]]
    print(f"\n{n} utterances from {args.data}{f' (first {args.limit})' if args.limit else ''}; "
          f"median of {args.repeat} run(s)")
    print(table(["run", "seconds", "utt/s", "x best seq"], rows))
    print(f"summary: sertune build time vs the faster sequential loop ({base:.2f} s): warm "
          f"{median(warm) / base:.2f} x, cold {median(cold) / base:.2f} x, with Ray start-up "
          f"{median(total) / base:.2f} x (target <= 0.5)")


if __name__ == "__main__":
    main()
