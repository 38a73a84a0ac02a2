"""The MFCC feature store's format: one Parquet shard per actor plus ``manifest.json``.

A store is complete exactly when ``manifest.json`` exists and lists its shards, because the
manifest is written last. This module defines the format and reads the manifest; ``load``
reads features, ``build`` writes stores. docs/tables.md describes it column by column.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from sertune import fsutil
from sertune.errors import StoreError

SCHEMA_VERSION = 2  # 1: mfcc a flat list<float32> of frames x n_mfcc, row-major (still read)
READABLE_VERSIONS = (1, 2)
SCHEMA_KEY = b"sertune.schema"  # each shard's Parquet key-value metadata: "store/<version>"
FORMAT = "sertune-mfcc-store"
MANIFEST = "manifest.json"
MARKER = ".sertune-store"  # written first: a folder with it is ours, even if a build broke off
META_FIELDS = [
    ("utt_id", pa.string()),
    ("actor", pa.int16()),
    ("gender", pa.string()),
    ("emotion", pa.string()),
    ("label", pa.int8()),
    ("intensity", pa.string()),
    ("statement", pa.int8()),
    ("repetition", pa.int8()),
    ("source", pa.string()),
    ("source_sample_rate", pa.int32()),
    ("n_frames", pa.int32()),
]
META_COLUMNS = [name for name, _ in META_FIELDS]
V1_SHARD_SCHEMA = pa.schema([*META_FIELDS, ("mfcc", pa.list_(pa.float32()))])


def shard_schema(n_mfcc: int) -> pa.Schema:
    """A shard's columns: per utterance its frames, each frame n_mfcc coefficients, so the
    layout is in the type itself (a reader gets frames x coefficients, not a flat run of floats)."""
    mfcc = pa.field("mfcc", pa.list_(pa.list_(pa.float32(), n_mfcc)),
                    metadata={b"description": b"frames (10 ms hop by default) x MFCC coefficients, raw (unnormalised)"})
    return pa.schema([*META_FIELDS, mfcc], metadata={SCHEMA_KEY: f"store/{SCHEMA_VERSION}".encode()})


def expected_schema(manifest: dict) -> pa.Schema:
    """The shard schema a store of this manifest's version holds."""
    return V1_SHARD_SCHEMA if manifest["schema_version"] == 1 else shard_schema(manifest["feature_dim"])


def frames_of(mfcc: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """Every frame of an mfcc column, back to back: (total frames, dim), either layout."""
    values = (mfcc.combine_chunks() if isinstance(mfcc, pa.ChunkedArray) else mfcc).flatten()
    if pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
    return values.to_numpy().reshape(-1, dim)


def read_manifest(store: str) -> dict:
    store = fsutil.normalize(store)
    location = fsutil.join(store, MANIFEST)
    if not fsutil.exists(location):
        what = "is not a sertune feature store (no manifest.json)" if fsutil.exists(store) else "no such store"
        raise StoreError(f"{store}: {what}; build one with `sertune prepare`")
    try:
        manifest = json.loads(fsutil.read_bytes(location))
    except ValueError as e:
        raise StoreError(f"{location}: unreadable manifest ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("schema_version") not in READABLE_VERSIONS:
        raise StoreError(
            f"{store}: store schema {manifest.get('format')!r} v{manifest.get('schema_version')}, "
            f"this sertune reads {FORMAT!r} v{READABLE_VERSIONS[0]}-v{READABLE_VERSIONS[-1]}; "
            "rebuild it with `sertune prepare --force`"
        )
    return manifest
