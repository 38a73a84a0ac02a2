"""Reading a feature store for training: checked shards -> packed tensors. No librosa, no
soundfile: training and the trials import only this side of the store."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sertune import fsutil
from sertune.audio.labels import EMOTIONS
from sertune.errors import StoreError
from sertune.store.schema import META_COLUMNS, SCHEMA_KEY, expected_schema, frames_of, read_manifest


def verify_store(store: str) -> dict:
    """Check every shard against the manifest's checksum."""
    store = fsutil.normalize(store)
    manifest = read_manifest(store)
    for s in manifest["shards"]:
        _shard_bytes(store, s)
    return manifest


def _shard_bytes(store: str, shard: dict) -> bytes:
    """A shard's bytes, exactly those the manifest lists (SHA-256: milliseconds per shard), so a
    damaged or edited shard is refused by name instead of trained on."""
    location = fsutil.join(store, shard["file"])
    if not fsutil.exists(location):
        raise StoreError(f"{location}: shard listed in the manifest is missing")
    data = fsutil.read_bytes(location)
    if hashlib.sha256(data).hexdigest() != shard["sha256"]:
        raise StoreError(f"{location}: checksum mismatch (not the shard the manifest lists); "
                         "the store is corrupt: rebuild it with `sertune prepare --force`")
    return data


def _read_shard(store: str, shard: dict, manifest: dict) -> pa.Table:
    location = fsutil.join(store, shard["file"])
    try:
        table = pq.read_table(pa.BufferReader(_shard_bytes(store, shard)))
    except (OSError, pa.ArrowInvalid) as e:
        raise StoreError(f"{location}: cannot read shard ({str(e).splitlines()[0]})") from None
    expected = expected_schema(manifest)
    if not table.schema.equals(expected) or (table.schema.metadata or {}).get(SCHEMA_KEY) != (expected.metadata or {}).get(SCHEMA_KEY):
        raise StoreError(f"{location}: shard schema differs from its manifest's (store v{manifest['schema_version']}); "
                         "rebuild with `sertune prepare --force`")
    if not np.isfinite(frames_of(table.column("mfcc"), manifest["feature_dim"])).all():
        raise StoreError(f"{location}: MFCC values that are NaN or infinite; rebuild with `sertune prepare --force`")
    return table


@dataclass
class FeatureSet:
    """Raw (unnormalised) MFCC of every utterance, packed back to back: memory follows the
    data, not its longest utterance (one 60 s file among 3 s ones used to multiply it)."""

    frames: torch.Tensor  # (sum of lengths, D) float32, utterance i at offsets[i] : offsets[i] + lengths[i]
    lengths: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) int64
    actors: torch.Tensor  # (N,) int64
    meta: pd.DataFrame  # one row per utterance: utt_id, actor, gender, emotion, ..., dup_group
    manifest: dict

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def store_hash(self) -> str:
        return self.manifest["store_hash"]

    @property
    def classes(self) -> tuple[str, ...]:
        """The label set, which ``labels`` index: the model's outputs, the confusion matrix's
        rows. A store from before label sets were recorded is RAVDESS's."""
        return tuple(self.manifest.get("corpus", {}).get("classes", EMOTIONS))

    @property
    def corpus(self) -> str:
        """The corpus's layout (ravdess, crema-d, emodb) or "manifest"."""
        return self.manifest.get("corpus", {}).get("name", "ravdess")

    @property
    def offsets(self) -> torch.Tensor:
        return torch.cumsum(self.lengths, 0) - self.lengths

    @classmethod
    def of(cls, utterances: list[torch.Tensor], labels: torch.Tensor, actors: torch.Tensor, meta: pd.DataFrame,
           manifest: dict) -> "FeatureSet":
        """Packed from one (T_i, D) tensor per utterance (e.g. files featurised for prediction)."""
        lengths = torch.tensor([len(u) for u in utterances], dtype=torch.int64)
        return cls(torch.cat(utterances), lengths, labels, actors, meta, manifest)

    def subset(self, idx: torch.Tensor) -> "FeatureSet":
        """Utterances ``idx``, in that order, packed anew."""
        offsets = self.offsets
        parts = [self.frames[offsets[i] : offsets[i] + self.lengths[i]] for i in idx.tolist()]
        return FeatureSet.of(parts, self.labels[idx], self.actors[idx],
                             self.meta.iloc[idx.tolist()].reset_index(drop=True), self.manifest)

    @property
    def features(self) -> torch.Tensor:
        """(N, T_max, D) zero-padded copy, built on each call: for inspection and small sets;
        training uses the packed ``frames``."""
        return pad(self.frames, self.offsets, self.lengths, torch.arange(len(self)))


def pad(frames: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Utterances ``idx`` of a packed frame tensor, zero-padded to the longest of them."""
    lens = lengths[idx]
    t = int(lens.max()) if len(lens) else 0
    pos = torch.arange(t, device=frames.device)
    rows = (offsets[idx][:, None] + pos[None, :]).clamp_(max=max(len(frames) - 1, 0))
    real = (pos[None, :] < lens[:, None]).unsqueeze(-1)
    return torch.where(real, frames[rows], frames.new_zeros(()))


def load_store(store: str, actors: list[int] | None = None) -> FeatureSet:
    """The store (or some actors of it) as packed tensors, every shard checked against the
    manifest's checksum; the whole RAVDESS in a fraction of a second."""
    store = fsutil.normalize(store)
    manifest = read_manifest(store)
    shards = [s for s in manifest["shards"] if actors is None or s["actor"] in set(actors)]
    if not shards:
        raise StoreError(f"{store}: no shard for actors {actors}")
    table = pa.concat_tables([_read_shard(store, s, manifest) for s in shards])
    return _to_featureset(table, manifest)


def duplicate_group_ids(utt_ids: pd.Series, manifest: dict) -> pd.Series:
    """Each utterance's duplicate group: the first name of its group of byte-identical files,
    or its own name."""
    first = {u: group[0] for group in manifest["corpus"].get("duplicates", []) for u in group}
    return utt_ids.map(lambda u: first.get(u, u))


def _to_featureset(table: pa.Table, manifest: dict) -> FeatureSet:
    dim = manifest["feature_dim"]
    lengths = table.column("n_frames").to_numpy().astype(np.int64)
    flat = frames_of(table.column("mfcc"), dim)
    meta = table.select(META_COLUMNS).to_pandas()
    meta["dup_group"] = duplicate_group_ids(meta["utt_id"], manifest)
    return FeatureSet(
        frames=torch.from_numpy(np.array(flat, dtype=np.float32)),  # a copy: Arrow memory is read-only
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
