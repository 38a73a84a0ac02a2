"""Reading a feature store for training: checked shards -> padded tensors. No librosa, no
soundfile: training and the trials import only this side of the store."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import torch

from sertune import fsutil
from sertune.errors import StoreError
from sertune.store.schema import META_COLUMNS, SHARD_SCHEMA, read_manifest

def verify_store(store: str) -> dict:
    """Check every shard against the manifest's checksum."""
    store = fsutil.normalize(store)
    manifest = read_manifest(store)
    for s in manifest["shards"]:
        location = fsutil.join(store, s["file"])
        if not fsutil.exists(location):
            raise StoreError(f"{location}: shard listed in the manifest is missing")
        if hashlib.sha256(fsutil.read_bytes(location)).hexdigest() != s["sha256"]:
            raise StoreError(f"{location}: checksum mismatch; the store is corrupt, rebuild it with --force")
    return manifest


@dataclass
class FeatureSet:
    """Raw (unnormalised) MFCC, zero-padded to the longest utterance."""

    features: torch.Tensor  # (N, T_max, D) float32
    lengths: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) int64
    actors: torch.Tensor  # (N,) int64
    meta: pd.DataFrame  # one row per utterance: utt_id, actor, gender, emotion, ...
    manifest: dict

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def store_hash(self) -> str:
        return self.manifest["store_hash"]


def load_store(store: str, actors: list[int] | None = None) -> FeatureSet:
    """The store (or some actors of it) as padded tensors; whole RAVDESS in a fraction of a second."""
    store = fsutil.normalize(store)
    manifest = read_manifest(store)
    shards = [s for s in manifest["shards"] if actors is None or s["actor"] in set(actors)]
    if not shards:
        raise StoreError(f"{store}: no shard for actors {actors}")
    fs, root = fsutil.resolve(store)
    try:
        table = pads.dataset([f"{root}/{s['file']}" for s in shards], filesystem=fs, format="parquet").to_table()
    except (OSError, pa.ArrowInvalid) as e:
        raise StoreError(f"{store}: cannot read shards ({str(e).splitlines()[0]})") from None
    if not table.schema.equals(SHARD_SCHEMA):
        raise StoreError(f"{store}: shard schema differs from this sertune's; rebuild with `sertune prepare --force`")
    return _to_featureset(table, manifest)


def _to_featureset(table: pa.Table, manifest: dict) -> FeatureSet:
    dim = manifest["feature_dim"]
    lengths = table.column("n_frames").to_numpy().astype(np.int64)
    flat = table.column("mfcc").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    n, t_max = len(lengths), int(lengths.max())
    padded = np.zeros((n, t_max, dim), dtype=np.float32)
    rows = np.repeat(np.arange(n), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    padded[rows, np.arange(len(rows)) - starts] = flat
    meta = table.select(META_COLUMNS).to_pandas()
    return FeatureSet(
        features=torch.from_numpy(padded),
        lengths=torch.from_numpy(lengths),
        labels=torch.from_numpy(meta["label"].to_numpy().astype(np.int64)),
        actors=torch.from_numpy(meta["actor"].to_numpy().astype(np.int64)),
        meta=meta,
        manifest=manifest,
    )


def cached_store(store: str) -> FeatureSet:
    """Each worker process reads a store once, then every trial it runs reuses it; keyed by
    the store's hash too, so a store rebuilt at the same path is read afresh."""
    return _load_cached(store, read_manifest(store)["store_hash"])


@functools.lru_cache(maxsize=2)
def _load_cached(store: str, store_hash: str) -> FeatureSet:
    return load_store(store)
