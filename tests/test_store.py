import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from sertune.training.batching import norm_statistics, normalize
from sertune.cli import cli
from sertune.errors import ConfigError, StoreError
from sertune.audio.features import MfccExtractor
from sertune.config import FeatureConfig, TrainConfig
from sertune.training.splits import make_splits
from sertune.store.load import load_store, verify_store
from sertune.store.schema import read_manifest


def prepare(*args):
    return CliRunner().invoke(cli, ["prepare", *map(str, args)], catch_exceptions=False)


def small_corpus(src, dst, actors=(1, 2)):
    for a in actors:
        shutil.copytree(src / f"Actor_{a:02d}", dst / f"Actor_{a:02d}")
    return dst


def leftovers(store):
    return sorted(p.name for p in store.parent.iterdir() if p.name.startswith(store.name + "."))


def test_store_contents(synth_store):
    m = verify_store(synth_store)
    assert m["corpus"]["n_utterances"] == 360 and m["corpus"]["n_actors"] == 6
    assert [s["actor"] for s in m["shards"]] == [1, 2, 3, 4, 5, 6]
    assert m["features"] == FeatureConfig().to_dict() and m["feature_dim"] == 34
    assert {"librosa", "numpy", "pyarrow", "sertune"} <= set(m["versions"])
    fs = load_store(synth_store)
    assert fs.features.dtype == torch.float32 and fs.features.shape[0] == 360 and fs.features.shape[2] == 34
    assert fs.features.shape[1] == int(fs.lengths.max())
    # padding is zero, real frames are not
    i = int(fs.lengths.argmin())
    assert fs.features[i, fs.lengths[i]:].abs().sum() == 0 and fs.features[i, : fs.lengths[i]].abs().sum() > 0
    sub = load_store(synth_store, actors=[2, 5])
    assert set(sub.actors.tolist()) == {2, 5} and len(sub) == 120


def test_store_matches_direct_extraction(synth_store, synth_corpus):
    fs = load_store(synth_store, actors=[3])
    row = fs.meta.iloc[7]
    direct, _ = MfccExtractor(FeatureConfig())(str(synth_corpus / row["source"]))
    assert np.allclose(fs.features[7, : len(direct)].numpy(), direct, rtol=1e-4, atol=1e-3) and fs.lengths[7] == len(direct)


def test_rebuild_is_noop_force_rebuilds_other_params_refused(synth_corpus, synth_store, tmp_path, ray_local):
    data = small_corpus(synth_corpus, tmp_path / "data")
    store = tmp_path / "store"
    assert prepare("--data", data, "--store", store).exit_code == 0
    # Built on Ray (a task per actor), the same store as the serial build behind synth_store,
    # which the other tests read: the same utterances and frames, the same MFCC to float32
    # rounding (not bit for bit: Ray workers run BLAS on one thread).
    on_ray, serial = load_store(str(store)), load_store(synth_store, actors=[1, 2])
    pd.testing.assert_frame_equal(on_ray.meta, serial.meta)
    assert torch.equal(on_ray.lengths, serial.lengths)
    assert torch.allclose(on_ray.features, serial.features, rtol=1e-5, atol=1e-4)
    first = (store / "manifest.json").read_bytes()
    r = prepare("--data", data, "--store", store)
    assert r.exit_code == 0 and "up to date" in r.output
    assert (store / "manifest.json").read_bytes() == first
    r = prepare("--data", data, "--store", store, "--hop-ms", "20")
    assert r.exit_code == 4 and "other feature parameters (hop_ms 10.0 → 20.0)" in r.output and "--force" in r.output
    r = prepare("--data", data, "--store", store, "--hop-ms", "20", "--force")
    assert r.exit_code == 0
    assert read_manifest(str(store))["features"]["hop_ms"] == 20.0
    assert leftovers(store) == []
    next(data.glob("Actor_*/*.wav")).unlink()  # the same parameters over another corpus
    r = prepare("--data", data, "--store", store, "--hop-ms", "20")
    assert r.exit_code == 4 and "exists with another corpus (the names or contents of its audio files differ" in r.output
    assert read_manifest(str(store))["features"]["hop_ms"] == 20.0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_bad_file_aborts_and_leaves_nothing(synth_corpus, tmp_path, ray_local, damage):
    data = small_corpus(synth_corpus, tmp_path / "data")
    bad = data / "Actor_02" / "03-01-05-02-01-01-02.wav"
    content = bad.read_bytes()
    bad.write_bytes({"garbage": b"RIFF not really a wave file" * 10, "truncated": content[:30], "empty": b""}[damage])
    store = tmp_path / "store"
    r = prepare("--data", data, "--store", store)
    assert r.exit_code == 3, r.output
    lines = r.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and str(bad) in lines[-1]
    assert not store.exists() and leftovers(store) == []
    r = prepare("--data", data, "--store", store, "--skip-bad")
    assert r.exit_code == 0 and "skipped 1 bad file" in r.output
    m = verify_store(str(store))
    assert m["corpus"]["n_utterances"] == 119 and [s["path"] for s in m["skipped"]] == [str(bad)]


def test_wrong_schema_store_is_refused(synth_corpus, synth_store, tmp_path, ray_local):
    data = small_corpus(synth_corpus, tmp_path / "data", actors=(1,))
    old = tmp_path / "old"
    shutil.copytree(synth_store, old)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 0}))
    with pytest.raises(StoreError, match="v0, this sertune reads"):
        load_store(str(old))
    r = prepare("--data", data, "--store", old)
    assert r.exit_code == 4 and "rebuild it" in r.output
    assert (old / "manifest.json").exists()  # refused: nothing was touched
    other = tmp_path / "notastore"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    r = prepare("--data", data, "--store", other, "--force")
    assert r.exit_code == 4 and "not a sertune feature store" in r.output
    assert (other / "thesis.tex").read_text() == "precious"


def test_store_uri_and_stereo_any_rate(synth_corpus, tmp_path, ray_local):
    data = small_corpus(synth_corpus, tmp_path / "data", actors=(1,))
    mono_path = data / "Actor_01" / "03-01-03-01-01-01-01.wav"
    y, sr = sf.read(mono_path)
    stereo = np.stack([y, y], axis=1)
    import librosa

    sf.write(mono_path, librosa.resample(stereo.T, orig_sr=sr, target_sr=44100).T, 44100)
    r = prepare("--data", data, "--store", f"file://{tmp_path}/uri-store")
    assert r.exit_code == 0, r.output
    fs = load_store(f"file://{tmp_path}/uri-store")
    row = fs.meta.index[fs.meta.utt_id == mono_path.stem][0]
    assert fs.meta.loc[row, "source_sample_rate"] == 44100
    assert abs(int(fs.lengths[row]) - round(len(y) / sr * 100)) <= 2  # 10 ms hop at the 16 kHz target


@pytest.mark.realdata
def test_real_48k_wav_sample(real_48k, tmp_path, ray_local):
    store = tmp_path / "s48"
    r = prepare("--data", real_48k, "--store", store)
    assert r.exit_code == 0, r.output
    fs = load_store(str(store))
    assert len(fs) == 8 and set(fs.meta.source_sample_rate) == {48000} and set(fs.actors.tolist()) == {2, 3}
    for i, src in enumerate(fs.meta.source):
        info = sf.info(str(real_48k / src))
        assert abs(int(fs.lengths[i]) - round(info.duration * 100)) <= 2


@pytest.mark.realdata
def test_real_corpus_full_build(real_16k, tmp_path, ray_local):
    store = tmp_path / "real"
    r = prepare("--data", real_16k, "--store", store)
    assert r.exit_code == 0, r.output
    assert "1440 utterances of 24 speakers in 24 shards, ravdess, 8 classes" in r.output
    m = verify_store(str(store))
    assert sum(s["n_utterances"] for s in m["shards"]) == 1440
    fs = load_store(str(store))
    assert fs.features.shape[0] == 1440 and 290 <= fs.lengths.min() and fs.lengths.max() <= 540
    # The same bits wherever MFCC are computed: Ray's workers run one BLAS thread, this process
    # (as `predict` does) two; unpinned, the mel product rounded differently (up to 1e-4).
    from threadpoolctl import threadpool_limits

    i = int(fs.lengths.argmax())
    with threadpool_limits(2):
        direct, _ = MfccExtractor(FeatureConfig())(str(real_16k / fs.meta["source"].iloc[i]))
    assert np.array_equal(fs.features[i, : len(direct)].numpy(), direct)


def test_normalization_uses_training_speakers_only(synth_store):
    fs = load_store(synth_store)
    split = make_splits(fs.meta, "speaker")[0]
    train = torch.as_tensor(split.train)
    base = normalize(fs, train, "global").padded()
    test_frames = torch.repeat_interleave(torch.isin(torch.arange(len(fs)), torch.as_tensor(split.test)), fs.lengths)
    fs.frames[test_frames] += 1000.0  # test speakers change wildly
    moved = normalize(fs, train, "global").padded()
    assert torch.allclose(base[train], moved[train])
    real = (torch.arange(base.shape[1])[None, :] < fs.lengths[:, None])
    frames = base[train][real[train]]
    assert frames.mean(0).abs().max() < 1e-3 and (frames.std(0) - 1).abs().max() < 1e-2
    cmvn = normalize(fs, train, "utterance").padded()
    assert cmvn[0, : fs.lengths[0]].mean(0).abs().max() < 1e-3
    assert cmvn[0, fs.lengths[0]:].abs().sum() == 0



def test_corpus_normalization_takes_every_speaker_and_the_checkpoint_keeps_it(synth_store):
    """--norm corpus (the authors' leak): the statistics of all frames, test speakers included;
    a change to the test speakers moves the training features too."""
    fs = load_store(synth_store)
    split = make_splits(fs.meta, "speaker")[0]
    train = torch.as_tensor(split.train)
    mean, std = norm_statistics(fs, train, "corpus")
    assert torch.allclose(mean, fs.frames.double().mean(0).float(), atol=1e-4)
    assert torch.allclose(std, fs.frames.double().std(0).float(), rtol=1e-4)
    assert norm_statistics(fs, train, "utterance") is None
    g_mean, _ = norm_statistics(fs, train, "global")
    assert not torch.allclose(mean, g_mean, atol=1e-3)  # the synthetic speakers differ
    base = normalize(fs, train, "corpus").padded()
    test_frames = torch.repeat_interleave(torch.isin(torch.arange(len(fs)), torch.as_tensor(split.test)), fs.lengths)
    fs.frames[test_frames] += 1000.0
    assert not torch.allclose(base[train], normalize(fs, train, "corpus").padded()[train])
    with pytest.raises(ConfigError, match="norm 'test' is not one of global, utterance, corpus"):
        TrainConfig(norm="test")


@pytest.mark.realdata
def test_mfcc_equals_librosa_reference(real_16k, real_48k):
    """The extractor's fast STFT path must give what librosa's own pipeline gives."""
    import librosa

    c = FeatureConfig()
    ex = MfccExtractor(c)
    for path in [next((real_16k / "Actor_05").glob("*.flac")), next((real_48k / "Actor_02").glob("*.wav"))]:
        ours, _ = ex(str(path))
        y, _ = librosa.load(path, sr=c.sample_rate, res_type="soxr_hq")
        ref = librosa.feature.mfcc(y=y, sr=c.sample_rate, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop_length,
                                   win_length=c.win_length, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax).T
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() < 1e-2 * np.abs(ref).max()


def test_interrupted_uri_build_can_be_rebuilt(synth_corpus, tmp_path, ray_local):
    """On object stores a build happens in place; one that broke off must not block the next."""
    data = small_corpus(synth_corpus, tmp_path / "data", actors=(1,))
    bad = data / "Actor_01" / "03-01-02-01-01-01-01.wav"
    good = bad.read_bytes()
    bad.write_bytes(b"junk")
    uri = f"file://{tmp_path}/uri-store"
    assert prepare("--data", data, "--store", uri).exit_code == 3
    assert (tmp_path / "uri-store" / ".sertune-store").exists() and not (tmp_path / "uri-store" / "manifest.json").exists()
    with pytest.raises(StoreError, match="no manifest"):
        load_store(uri)
    bad.write_bytes(good)
    r = prepare("--data", data, "--store", uri)
    assert r.exit_code == 0, r.output
    assert len(load_store(uri)) == 60


def test_the_store_hash_is_of_the_values_not_of_the_parquet_files(synth_store):
    """A shard file's bytes also hold the writer's version (created_by) and its encoding choices;
    the store hash must not: the same features written by another pyarrow are the same store (else a
    sweep could not resume after an upgrade). Here the same values written another way (zstd,
    data page v2) give another file digest and the same content digest."""
    import hashlib
    import io as _io
    import json as _json

    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as _pq

    from sertune.store.build import content_digest

    manifest = _json.loads((Path(synth_store) / "manifest.json").read_text())
    for shard in manifest["shards"]:
        table = _pq.read_table(Path(synth_store) / shard["file"])
        assert content_digest(table) == shard["content_sha256"]
        buf = _io.BytesIO()
        _pq.write_table(table, buf, compression="zstd", data_page_version="2.0")
        again = _pq.read_table(_io.BytesIO(buf.getvalue()))
        assert hashlib.sha256(buf.getvalue()).hexdigest() != shard["sha256"]
        assert content_digest(again) == shard["content_sha256"]
    changed = table.set_column(table.schema.get_field_index("label"), "label",
                               pa.array([(x + 1) % 8 for x in table.column("label").to_pylist()], table.schema.field("label").type))
    assert content_digest(changed) != shard["content_sha256"]
