"""The MFCC feature store's format: one Parquet shard per actor plus ``manifest.json``.

A store is complete exactly when ``manifest.json`` exists and lists its shards, because the
manifest is written last. This module defines the format and reads the manifest; ``load``
reads features, ``build`` writes stores.
"""

from __future__ import annotations

import json

import pyarrow as pa

from sertune import fsutil
from sertune.errors import StoreError

SCHEMA_VERSION = 1
FORMAT = "sertune-mfcc-store"
MANIFEST = "manifest.json"
MARKER = ".sertune-store"  # written first: a folder with it is ours, even if a build broke off
SHARD_SCHEMA = pa.schema(
    [
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
        ("mfcc", pa.list_(pa.float32())),  # frames x n_mfcc, row-major
    ]
)
META_COLUMNS = [f.name for f in SHARD_SCHEMA if f.name != "mfcc"]


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
    if manifest.get("format") != FORMAT or manifest.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"{store}: store schema {manifest.get('format')!r} v{manifest.get('schema_version')}, "
            f"this sertune reads {FORMAT!r} v{SCHEMA_VERSION}; rebuild it with `sertune prepare --force`"
        )
    return manifest


