"""Store format v2 (each utterance a list of frames of n_mfcc coefficients) against v1 (one flat
list of floats per utterance, the baseline): load_store time and shard bytes, in the same run,
on the same features (the v1 copy is converted from the v2 store, so the values are equal).

    python benchmarks/store_format.py                    # real corpus, median of 9 loads each
    python benchmarks/store_format.py --data synthetic --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from _common import REAL_DATA, add_store_args, median, store_from_args, table
from sertune.store.load import load_store
from sertune.store.schema import META_COLUMNS, V1_SHARD_SCHEMA


def as_v1(src: str, dst: Path) -> None:
    """The v2 store ``src`` rewritten in the v1 layout (as sertune wrote stores before v2)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    dim = manifest["feature_dim"]
    for shard in manifest["shards"]:
        t = pq.read_table(dst / shard["file"])
        frames = t.column("mfcc").combine_chunks()
        flat = pa.ListArray.from_arrays(pa.array(np.asarray(frames.offsets) * dim, pa.int32()), frames.flatten().flatten())
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_arrays([*t.select(META_COLUMNS).columns, flat], schema=V1_SHARD_SCHEMA), buf,
                       compression="none")
        (dst / shard["file"]).write_bytes(buf.getvalue())
        shard["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    manifest["schema_version"] = 1
    (dst / "manifest.json").write_text(json.dumps(manifest))


def timed_loads(store: str, repeat: int) -> float:
    load_store(store)  # untimed: the page cache and imports
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        load_store(store)
        times.append(time.perf_counter() - t0)
    return median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_args(p, str(REAL_DATA))
    p.add_argument("--repeat", type=int, default=9)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        v2 = store_from_args(args, Path(tmp))
        v1 = Path(tmp) / "store-v1"
        as_v1(v2, v1)
        a, b = load_store(v2), load_store(str(v1))
        assert torch.equal(a.frames, b.frames) and a.store_hash == b.store_hash  # the same features, one hash
        size = lambda s: sum(f.stat().st_size for f in Path(s, "shards").iterdir())  # noqa: E731
        t1, t2 = timed_loads(str(v1), args.repeat), timed_loads(v2, args.repeat)
        rows = [["v1 flat list (baseline)", t1 * 1000, size(v1) / 1e6, 1.0],
                ["v2 frames x n_mfcc", t2 * 1000, size(v2) / 1e6, t2 / t1]]
        print(table(["layout", "load ms", "shard MB", "x baseline"], rows))
        print(f"summary: {len(a)} utterances, {len(a.frames)} frames; v2 loads in {t2 / t1:.2f} x v1's time, "
              f"shards {size(v2) / size(v1):.2f} x v1's bytes, same store hash {a.store_hash}")


if __name__ == "__main__":
    main()
