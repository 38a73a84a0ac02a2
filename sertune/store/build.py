"""Building a feature store: plan, per-actor extraction (run as Ray tasks by ``prepare``),
manifest, publishing. Locally the whole store is built beside its final path and renamed into
place, so an interrupted build leaves no directory at STORE at all; on object stores the
manifest is written last and a ``.sertune-store`` marker first.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass

import librosa
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import soundfile

from sertune import __version__, fsutil, locks
from sertune.audio.corpus import Corpus, read_corpus
from sertune.audio.labels import EMOTIONS
from sertune.audio.features import MfccExtractor
from sertune.config import FeatureConfig
from sertune.errors import CorpusError, StoreError
from sertune.store.schema import FORMAT, MANIFEST, MARKER, META_COLUMNS, SCHEMA_VERSION, read_manifest, shard_schema

def _versions() -> dict:
    return {
        "sertune": __version__,
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "soundfile": soundfile.__version__,
        "pyarrow": pa.__version__,
    }


def _file_hashes(paths) -> list[str]:
    """SHA-256 of each source file's bytes: reading is cheap next to decoding (the real corpus,
    52 MB of FLAC, hashes in a fraction of a second), and content, unlike names, sizes or
    mtimes, cannot change unseen. A file that several segments cut is read once."""
    digests = {}
    for path in dict.fromkeys(paths):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digests[path] = h.hexdigest()
    return [digests[p] for p in paths]


def _corpus_fingerprint(table: pd.DataFrame, corpus: Corpus) -> str:
    """Names and contents of the source files, and the manifest that labels them where one
    does: a changed corpus means a different store. (A layout's names are its labels.)"""
    h = hashlib.sha256()
    for utt, digest in zip(table["utt_id"], table["sha256"]):
        h.update(f"{utt}:{digest}\n".encode())
    if "manifest_sha256" in corpus.record:
        h.update(f"manifest:{corpus.record['manifest_sha256']}:{','.join(corpus.classes)}\n".encode())
    return h.hexdigest()


def duplicate_groups(table: pd.DataFrame) -> list[list[str]]:
    """Utterances whose audio is byte-identical (the same stretch of byte-identical files):
    under a random split one copy in training and the other in test would be a leak."""
    stretch = [f"{h}#{s_}-{e}" for h, s_, e in zip(table["sha256"], *(table.get(c, [None] * len(table)) for c in ("start", "end")))]
    groups = table.groupby(pd.Series(stretch, index=table.index))["utt_id"].agg(sorted)
    return sorted(g for g in groups if len(g) > 1)


def _store_hash(features: dict, shards: list[dict]) -> str:
    h = hashlib.sha256(json.dumps(features, sort_keys=True).encode())
    for s in shards:  # the values' digest; stores built before it existed hashed the files
        h.update(s.get("content_sha256", s["sha256"]).encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _extractor(config: FeatureConfig) -> MfccExtractor:
    return MfccExtractor(config)


def _extract_rows(rows: list[dict], config: FeatureConfig) -> tuple[list, list, list]:
    """Each row's MFCC, or its error; rows of one file together (by path), so the segments a
    manifest cuts from one long recording share one decoding."""
    good, errors, warnings = [], [], []
    for row in sorted(rows, key=lambda r: r["path"]):
        try:
            mfcc, sr, warning = _extractor(config).extract(row["path"], _seconds(row.get("start")), _seconds(row.get("end")))
            good.append({**row, "mfcc": mfcc, "source_sample_rate": sr})
        except CorpusError as e:
            errors.append({"utt_id": row["utt_id"], "path": row["path"], "error": e.message})
            continue
        if warning:
            warnings.append({"utt_id": row["utt_id"], "path": row["path"], "warning": warning})
    return good, errors, warnings


def extract_shard(actor: int, rows: list[dict], config: FeatureConfig, staging: str, root: str) -> dict:
    """One actor's utterances -> one Parquet shard written straight into the staging store.

    Runs as a Ray task wherever the cluster puts it. A bad file becomes an ``errors`` entry,
    not an exception, so the driver decides between aborting and skipping; with any error and
    ``skip_bad`` unset it is the driver that will throw the staging store away.
    """
    try:
        good, errors, warnings = _extract_rows(rows, config)
    finally:
        _extractor(config).forget()
    shard = None
    if good:
        table = _shard_table(sorted(good, key=lambda r: r["utt_id"]), root, config.n_mfcc)
        data = _parquet_bytes(table)
        name = f"shards/actor_{actor:02d}.parquet"
        fs, path = fsutil.resolve(staging)
        with fs.open_output_stream(f"{path}/{name}") as f:
            f.write(data)
        shard = {"file": name, "actor": actor, "n_utterances": len(good),
                 "n_frames": int(sum(len(r["mfcc"]) for r in good)),
                 "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content_sha256": content_digest(table)}
    return {"shard": shard, "errors": errors, "warnings": warnings, "n": len(rows)}


def _seconds(value) -> float | None:
    return None if value is None or value != value else float(value)  # NaN: pandas' None


def source_of(row: dict, root: str) -> str:
    """Where an utterance came from, relative to the corpus folder (a manifest's file outside
    it: its absolute path); a segment as a W3C media fragment (`file.wav#t=12.5,15`), so the
    store's columns stay the same for every corpus."""
    source = os.path.relpath(row["path"], root)
    if source.startswith(os.pardir + os.sep):
        source = row["path"]
    start, end = _seconds(row.get("start")), _seconds(row.get("end"))
    if start is None and end is None:
        return source
    return f"{source}#t={start or 0:g}" + (f",{end:g}" if end is not None else "")


def content_digest(table: pa.Table) -> str:
    """SHA-256 of a shard's values, not of its file: the file's bytes also hold the writer's
    version (Parquet's created_by), so the same features written by another pyarrow would make
    another store, and a sweep could not resume on a machine that installed a newer one.
    The MFCC are hashed as one run of floats with offsets counted in floats, whatever the
    layout (v1 flat lists, v2 lists of frames): the store hash outlives the format change."""
    h = hashlib.sha256()
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        h.update(name.encode() + b"\0")
        if pa.types.is_list(col.type):
            offsets, values = np.asarray(col.offsets, dtype="<i8"), col.flatten()
            if pa.types.is_fixed_size_list(values.type):
                offsets, values = offsets * values.type.list_size, values.flatten()
            h.update(offsets.tobytes())
            h.update(np.asarray(values, dtype="<f4").tobytes())
        else:
            h.update(json.dumps(col.to_pylist()).encode())
    return h.hexdigest()


def _shard_table(rows: list[dict], root: str, n_mfcc: int) -> pa.Table:
    schema = shard_schema(n_mfcc)
    cols = {name: [] for name in META_COLUMNS}
    for r in rows:
        for name in META_COLUMNS:
            if name == "source":
                cols[name].append(source_of(r, root))
            elif name == "n_frames":
                cols[name].append(len(r["mfcc"]))
            else:
                cols[name].append(r[name])
    arrays = [pa.array(cols[n], type=schema.field(n).type) for n in META_COLUMNS]
    flat = np.concatenate([r["mfcc"].reshape(-1) for r in rows]) if rows else np.zeros(0, np.float32)
    frames = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), n_mfcc)
    offsets = np.concatenate([[0], np.cumsum(cols["n_frames"])]).astype(np.int32)
    arrays.append(pa.ListArray.from_arrays(pa.array(offsets), frames))
    return pa.Table.from_arrays(arrays, schema=schema)


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none")  # MFCC floats barely compress: save the CPU
    return buf.getvalue()


@dataclass
class BuildPlan:
    data: str
    store: str
    config: FeatureConfig
    table: pd.DataFrame
    fingerprint: str
    corpus: Corpus


def plan_build(data: str, store: str, config: FeatureConfig, force: bool, layout: str = "auto",
               labels: tuple[str, ...] | None = None, audio_root: str | None = None) -> BuildPlan | None:
    """The build to run, or None when an identical store already exists."""
    corpus = read_corpus(data, layout, labels, audio_root)
    table = corpus.table
    config.validate()
    table["sha256"] = _file_hashes(table["path"])
    plan = BuildPlan(str(data), fsutil.normalize(store), config, table, _corpus_fingerprint(table, corpus), corpus)
    if not fsutil.exists(plan.store):
        return plan
    if fsutil.is_dir(plan.store) and not _dir_has_entries(plan.store):
        return plan
    if not is_sertune_store(plan.store):
        # Not ours: no flag may replace it, and no message may suggest one.
        raise StoreError(f"{plan.store}: exists and is not a sertune feature store (no {MARKER}, no sertune "
                         "manifest.json); refusing to touch it: choose another --store")
    try:
        old = read_manifest(plan.store)
    except StoreError as e:
        if force or not fsutil.exists(fsutil.join(plan.store, MANIFEST)):
            return plan  # an interrupted build of ours, or one of another schema the user asked to replace
        raise StoreError(f"{e.message}; refusing to overwrite it") from None
    if force:
        return plan
    new = config.to_dict()
    changed = [k for k in sorted(old["features"].keys() | new.keys()) if old["features"].get(k) != new.get(k)]
    if changed:
        what = "other feature parameters (" + ", ".join(f"{k} {old['features'].get(k)} → {new.get(k)}" for k in changed) + ")"
    elif old["corpus"].get("classes", list(EMOTIONS)) != list(corpus.classes):
        what = f"another label set ({', '.join(old['corpus'].get('classes', EMOTIONS))} → {', '.join(corpus.classes)})"
    elif old["corpus"]["fingerprint"] != plan.fingerprint:
        # Also what a store built before content fingerprints (sertune 0.1.0+c8c937a) reports.
        what = "another corpus (the names or contents of its audio files differ from --data's)"
    else:
        return None
    raise StoreError(f"{plan.store}: exists with {what}; pass --force to rebuild it or choose another --store")


def is_sertune_store(location: str) -> bool:
    """A folder sertune made: its marker (written first), or a manifest in sertune's format
    (stores older than the marker). Only such a folder may ever be replaced."""
    if not fsutil.is_dir(location) and not fsutil.is_uri(location):
        return False
    if fsutil.exists(fsutil.join(location, MARKER)):
        return True
    try:
        manifest = json.loads(fsutil.read_bytes(fsutil.join(location, MANIFEST)))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _dir_has_entries(location: str) -> bool:
    fs, path = fsutil.resolve(location)
    return bool(fs.get_file_info(pafs.FileSelector(path, recursive=False)))


def build_store(plan: BuildPlan, run_tasks, skip_bad: bool = False, progress=None) -> dict:
    """Extract every actor's shard with ``run_tasks`` (e.g. on Ray) and publish the store.

    ``run_tasks(tasks)`` calls ``extract_shard(*task)`` for each task and yields the results as
    they finish; ``progress(n)`` is told how many utterances each result covered.
    """
    local = not fsutil.is_uri(plan.store)
    if local:
        clean_stale_staging(plan.store)
    staging = f"{plan.store}.partial-{uuid.uuid4().hex[:8]}" if local else plan.store
    fs, staging_path = fsutil.resolve(staging)
    try:
        if not local and fsutil.exists(fsutil.join(staging, MANIFEST)):
            fs.delete_file(fsutil.join(staging_path, MANIFEST))  # no longer complete from here on
        fs.create_dir(f"{staging_path}/shards", recursive=True)
        with fs.open_output_stream(f"{staging_path}/{MARKER}") as f:
            f.write(json.dumps({"sertune feature store": True, **locks.holder_info()}).encode())
        tasks = [(int(actor), rows.to_dict("records"), plan.config, staging, plan.corpus.root)
                 for actor, rows in plan.table.drop(columns="sha256").groupby("actor")]
        shards, skipped, warnings = [], [], []
        for result in run_tasks(tasks):
            if result["errors"] and not skip_bad:
                raise CorpusError(result["errors"][0]["error"])
            skipped += result["errors"]
            warnings += result["warnings"]
            if result["shard"]:
                shards.append(result["shard"])
            if progress:
                progress(result["n"])
        if not shards:
            raise CorpusError(f"{plan.data}: no utterance could be read")
        _check_visible(fs, staging_path, shards)
        manifest = _manifest(plan, sorted(shards, key=lambda s: s["actor"]), skipped,
                             sorted(warnings, key=lambda w: w["utt_id"]))
        with fs.open_output_stream(f"{staging_path}/{MANIFEST}") as f:
            f.write(json.dumps(manifest, indent=2).encode())
        if local:
            _swap_into_place(staging, plan.store)
        return manifest
    except BaseException:
        if local:
            fsutil.delete_dir(staging)
        raise


def clean_stale_staging(store: str) -> list[str]:
    """Remove ``STORE.partial-*`` / ``STORE.old-*`` folders left by a build that was killed
    (SIGKILL, power loss): only those whose marker names a process of this host that is dead.
    Another host's or a live process's staging folder is never touched."""
    parent, name = os.path.split(store)
    removed = []
    if not os.path.isdir(parent):
        return removed
    for entry in os.scandir(parent):
        if not (entry.name.startswith(f"{name}.partial-") or entry.name.startswith(f"{name}.old-")):
            continue
        try:
            with open(os.path.join(entry.path, MARKER)) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            continue  # no marker of ours with a holder: not provably ours and stale
        if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
            continue
        if not locks.pid_alive(holder.get("host"), holder["pid"]):
            fsutil.delete_dir(entry.path)
            removed.append(entry.path)
    return removed


def _check_visible(fs, staging_path: str, shards: list[dict]) -> None:
    """Workers wrote the shards; on a cluster a plain local path is each node's own disk."""
    for s in shards:
        info = fs.get_file_info(f"{staging_path}/{s['file']}")
        if info.size != s["bytes"]:
            raise StoreError(f"{staging_path}/{s['file']}: written by a worker but not visible to the driver; "
                             "on a cluster the store must be on storage every node shares (s3://, NFS)")


def _swap_into_place(staging: str, store: str) -> None:
    fs, _ = fsutil.resolve(store)
    old = None
    if fsutil.exists(store):
        old = f"{store}.old-{uuid.uuid4().hex[:8]}"
        fs.move(store, old)
    fs.move(staging, store)
    if old:
        fsutil.delete_dir(old)


def _manifest(plan: BuildPlan, shards: list[dict], skipped: list[dict], warnings: list[dict]) -> dict:
    kept = plan.table[~plan.table["utt_id"].isin({s["utt_id"] for s in skipped})]
    features = plan.config.to_dict()
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features": features,
        "feature_dim": plan.config.n_mfcc,
        "versions": _versions(),
        "corpus": {
            "name": plan.corpus.name,  # the layout (ravdess, crema-d, emodb) or "manifest"
            "classes": list(plan.corpus.classes),  # the label set: `label` indexes it; the model's outputs
            **plan.corpus.record,  # a manifest's path, SHA-256 and speaker names
            "source": str(plan.data),
            "fingerprint": plan.fingerprint,
            "n_utterances": int(len(kept)),
            "n_actors": int(kept["actor"].nunique()),
            "per_emotion": {k: int(v) for k, v in kept.groupby("emotion").size().items()},
            "per_gender": {k: int(v) for k, v in kept.groupby("gender").size().items()},
            "duplicates": duplicate_groups(kept),  # byte-identical files; a random split keeps each group together
            "warnings": warnings,  # digital silence, stereo that cancels when mixed to mono
        },
        "shards": shards,
        "skipped": skipped,
        "store_hash": _store_hash(features, shards),
    }




def serial_runner(tasks):
    """Runs shard tasks one after another in this process: the no-Ray way to build a store."""
    for task in tasks:
        yield extract_shard(*task)
