"""What the three benchmarks share: where the data is, getting a store, printing a table."""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Same default as the tests: the shared data folder beside the repository, or $SERTUNE_SHARED_DATA.
REAL_DATA = Path(os.environ.get("SERTUNE_SHARED_DATA", REPO.parent / "shared" / "data")) / "ravdess-speech-16k"
SYNTHETIC = "synthetic"  # --data value meaning: generate the built-in corpus into a temp dir


def add_store_args(p: argparse.ArgumentParser, default_data: str) -> None:
    p.add_argument("--store", help="a prepared feature store (skips building one)")
    p.add_argument("--data", default=default_data,
                   help=f"corpus folder to build a temporary store from, or '{SYNTHETIC}' for the built-in corpus "
                        f"(default: {default_data})")
    p.add_argument("--actors", type=int, default=8, help="actors of the built-in corpus (with --data synthetic)")


def corpus(data: str, tmp: Path, actors: int = 8) -> str:
    """A corpus folder: ``data`` itself, or the built-in synthetic corpus written under ``tmp``."""
    if data != SYNTHETIC:
        return str(data)
    from sertune.audio.synthetic import write_corpus

    write_corpus(tmp / "corpus", actors=actors)
    return str(tmp / "corpus")


def store_from_args(args, tmp: Path) -> str:
    """--store as given, else a store built from --data under ``tmp`` (not timed by anyone)."""
    if args.store:
        from sertune import fsutil

        return fsutil.normalize(args.store)  # Tune runs trials in their own working directories
    from sertune.config import FeatureConfig
    from sertune.store.prepare import prepare

    data = corpus(args.data, tmp, args.actors)
    store = str(tmp / "store")
    prepare(data, store, FeatureConfig(), progress=False)
    print(f"built a temporary store from {data}")
    return store


def median(xs) -> float:
    return statistics.median(xs)


def table(headers: list[str], rows: list[list]) -> str:
    """Aligned plain-text table: first column left, the rest right; floats to 3 significant places."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [headers] + [[fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])
