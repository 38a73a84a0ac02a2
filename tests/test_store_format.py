"""The feature store describes itself (store v2): each utterance's MFCC as a list of frames of
n_mfcc coefficients, a schema version in every shard's metadata; a v1 store (one flat list of
floats per utterance) still reads as the same features under the same store hash; a store of an
unknown version is refused in one line that says how to rebuild it. docs/tables.md."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from sertune.cli import cli
from sertune.errors import StoreError
from sertune.store.build import content_digest
from sertune.store.load import load_store, verify_store
from sertune.store.schema import META_COLUMNS, V1_SHARD_SCHEMA


def _manifest(store) -> dict:
    return json.loads((Path(store) / "manifest.json").read_text())


def test_shards_hold_frames_of_coefficients_and_say_their_version(synth_store):
    manifest = _manifest(synth_store)
    assert manifest["schema_version"] == 2
    fs = load_store(synth_store)
    start = 0
    for shard in manifest["shards"]:
        path = Path(synth_store) / shard["file"]
        table = pq.read_table(path)
        mfcc = table.schema.field("mfcc").type
        assert pa.types.is_list(mfcc) and pa.types.is_fixed_size_list(mfcc.value_type)
        assert mfcc.value_type.list_size == 34 and mfcc.value_type.value_type == pa.float32()
        assert pq.read_metadata(path).metadata[b"sertune.schema"] == b"store/2"
        # DuckDB reads the Parquet as frames of coefficients: one list per frame, 34 floats each,
        # and the frame counts of n_frames.
        con = duckdb.connect()
        types = dict(con.sql(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{path}'))").fetchall())
        assert types["mfcc"] == "FLOAT[][]" and types["actor"] == "SMALLINT" and types["label"] == "TINYINT"
        rows = con.sql(f"SELECT len(mfcc), n_frames, list_distinct(list_transform(mfcc, lambda f: len(f))), mfcc[1] "
                       f"FROM read_parquet('{path}') ORDER BY utt_id").fetchall()
        assert all(n == frames and dims == [34] for n, frames, dims, _ in rows)
        # The first frame DuckDB sees is the first frame training reads.
        first = np.array(rows[0][3], dtype=np.float32)
        assert np.array_equal(first, fs.frames[start].numpy())
        start += sum(n for n, *_ in rows)
    assert start == len(fs.frames)


def _as_v1(src: str, dst: Path) -> dict:
    """The store ``src`` rewritten as sertune wrote stores before v2: flat MFCC lists, no schema
    key, manifest schema_version 1, the file checksums of those files."""
    shutil.copytree(src, dst)
    manifest = _manifest(dst)
    for shard in manifest["shards"]:
        table = pq.read_table(dst / shard["file"])
        frames = table.column("mfcc").combine_chunks()
        flat = pa.ListArray.from_arrays(pa.array(np.asarray(frames.offsets) * 34, pa.int32()), frames.flatten().flatten())
        old = pa.Table.from_arrays([*table.select(META_COLUMNS).columns, flat], schema=V1_SHARD_SCHEMA)
        buf = io.BytesIO()
        pq.write_table(old, buf, compression="none")
        (dst / shard["file"]).write_bytes(buf.getvalue())
        shard["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
        assert content_digest(old) == shard["content_sha256"]  # one digest for both layouts
    manifest["schema_version"] = 1
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_a_v1_store_reads_as_the_same_features_under_the_same_hash(synth_store, synth_corpus, tmp_path):
    old = tmp_path / "v1"
    _as_v1(synth_store, old)
    assert pq.read_table(old / "shards" / "actor_01.parquet").schema.field("mfcc").type == pa.list_(pa.float32())
    a, b = load_store(synth_store), load_store(str(old))
    assert verify_store(str(old))["schema_version"] == 1
    assert torch.equal(a.frames, b.frames) and torch.equal(a.lengths, b.lengths) and torch.equal(a.labels, b.labels)
    assert a.store_hash == b.store_hash and a.meta.equals(b.meta)
    # prepare over it: nothing to rebuild, and it says the store is of the older format.
    r = CliRunner().invoke(cli, ["prepare", "--data", str(synth_corpus), "--store", str(old)], catch_exceptions=False)
    assert r.exit_code == 0 and "up to date" in r.output and "store format v1" in r.output, r.output


@pytest.mark.parametrize("version", [0, 3])
def test_a_store_of_another_version_is_refused_in_one_line(synth_store, tmp_path, version):
    other = tmp_path / f"v{version}"
    shutil.copytree(synth_store, other)
    (other / "manifest.json").write_text(json.dumps({**_manifest(synth_store), "schema_version": version}))
    with pytest.raises(StoreError) as e:
        load_store(str(other))
    assert "\n" not in e.value.message and str(other) in e.value.message
    assert f"v{version}, this sertune reads 'sertune-mfcc-store' v1-v2; rebuild it with `sertune prepare --force`" in e.value.message


def test_a_shard_whose_layout_disagrees_with_its_manifest_is_refused(synth_store, tmp_path):
    """A v2 manifest over v1 shards (a half-converted copy): refused by file, not misread."""
    mixed = tmp_path / "mixed"
    manifest = _as_v1(synth_store, mixed)
    (mixed / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 2}))
    with pytest.raises(StoreError, match=r"actor_01\.parquet: shard schema differs from its manifest's \(store v2\)"):
        load_store(str(mixed))
