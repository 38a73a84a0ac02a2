"""Any corpus: RAVDESS, CREMA-D and EmoDB by their file names, or a manifest (CSV, JSON Lines,
EmoBox's jsonl); the label set comes from the corpus and decides the model's outputs, the
per-class tables and the confusion matrices; the store records the corpus, its label set and the
manifest's hash; one report never mixes corpora."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from sertune.audio import cremad, emodb
from sertune.audio.corpus import read_corpus, read_folder
from sertune.audio.labels import EMOTIONS
from sertune.cli import cli
from sertune.config import FeatureConfig
from sertune.errors import CorpusError
from sertune.store.build import build_store, plan_build, serial_runner
from sertune.store.load import load_store
from sertune.training.splits import make_splits

RAVDESS_NAME = re.compile(r"^03-01-(\d{2})-\d{2}-\d{2}-\d{2}-(\d{2})$")


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def real_two(real_16k, tmp_path_factory) -> Path:
    """Actors 1 and 2 of the real RAVDESS, linked (never copied: CC BY-NC-SA) into a folder."""
    root = tmp_path_factory.mktemp("ravdess2")
    for a in (1, 2):
        (root / f"Actor_{a:02d}").symlink_to(real_16k / f"Actor_{a:02d}")
    return root


def _ravdess_manifest(root: Path, out: Path) -> Path:
    """A CSV manifest of a RAVDESS folder, its labels read off the names here (not by sertune)."""
    rows = []
    for f in sorted(root.glob("Actor_*/*.flac")):
        emotion, actor = RAVDESS_NAME.match(f.stem).groups()
        rows.append({"path": str(f.relative_to(root)), "label": EMOTIONS[int(emotion) - 1], "speaker": int(actor),
                     "gender": "male" if int(actor) % 2 else "female"})
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def test_ravdess_through_a_manifest_is_the_ravdess_store(real_two, tmp_path, ray_local):
    by_names = tmp_path / "by-names"
    assert run("prepare", "--data", real_two, "--store", by_names).exit_code == 0
    manifest = _ravdess_manifest(real_two, tmp_path / "m" / "ravdess.csv")
    by_manifest = tmp_path / "by-manifest"
    r = run("prepare", "--data", manifest, "--audio-root", real_two, "--labels", ",".join(EMOTIONS), "--store", by_manifest)
    assert r.exit_code == 0, r.output
    a, b = load_store(str(by_names)), load_store(str(by_manifest))
    assert torch.equal(a.frames, b.frames) and torch.equal(a.lengths, b.lengths)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.actors, b.actors)
    assert a.meta["utt_id"].tolist() == b.meta["utt_id"].tolist() and a.meta["source"].tolist() == b.meta["source"].tolist()
    assert a.classes == b.classes == EMOTIONS and (a.corpus, b.corpus) == ("ravdess", "manifest")
    assert b.manifest["corpus"]["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    # Without --labels the label set is the manifest's, sorted, and the labels index it.
    c = read_corpus(manifest, audio_root=str(real_two))
    assert c.classes == tuple(sorted(EMOTIONS))
    assert [c.classes[i] for i in c.table["label"]] == [EMOTIONS[i] for i in a.labels.tolist()]


EMOBOX_NAMES = {e: e.capitalize() for e in EMOTIONS}  # EmoBox's RAVDESS 'emo' values: Angry, Calm, ...


def _emobox_line(dataset: str, wav: str, emo: str) -> str:
    """A line as EmoBox's data/<dataset>/*.jsonl hold them (its write_jsonl's ten fields)."""
    stem = Path(wav).stem.replace("_", "-")
    return json.dumps({"key": f"{dataset}-{stem}", "dataset": dataset, "wav": wav, "type": "raw", "sample_rate": 16000,
                       "num_frame": 48000.0, "task": "category", "length": 3.0, "emo": emo, "channel": 1})


def test_emobox_manifests_read_as_emobox_derives_the_speaker(real_two, tmp_path):
    # RAVDESS as EmoBox lays it out (downloads/ravdess/audio/...), over the real files.
    root = tmp_path / "EmoBox"
    audio = root / "downloads" / "ravdess" / "audio" / "Audio_Speech_Actors_01-24"
    audio.parent.mkdir(parents=True)
    audio.symlink_to(real_two)
    files = sorted(real_two.glob("Actor_*/*.flac"))
    lines = [_emobox_line("ravdess", str(audio.relative_to(root) / f.relative_to(real_two)),
                          EMOBOX_NAMES[EMOTIONS[int(RAVDESS_NAME.match(f.stem).group(1)) - 1]]) for f in files]
    jsonl = root / "data" / "ravdess" / "ravdess.jsonl"
    jsonl.parent.mkdir(parents=True)
    jsonl.write_text("\n".join(lines) + "\n")
    c = read_corpus(jsonl, audio_root=str(root))
    assert len(c.table) == 120 and c.classes == tuple(sorted(EMOBOX_NAMES.values()))
    assert c.table["utt_id"].tolist() == [f"ravdess-{f.stem}" for f in files]  # EmoBox's key
    assert c.table.groupby("actor").size().to_dict() == {1: 60, 2: 60}  # the name's 7th field
    assert c.table.drop_duplicates("actor")["gender"].tolist() == ["male", "female"]
    # CREMA-D (ActorID, the first '_' field) and EmoDB (the name's first two digits): names only.
    for dataset, names, want in (("cremad", ["AudioWAV/1052_WSI_ANG_XX.wav", "AudioWAV/1001_IEO_HAP_HI.wav"], [1001, 1052]),
                                 ("emodb", ["wav/03a02Wb.wav", "wav/16b10Ta.wav"], [3, 16])):
        folder = tmp_path / dataset
        for n in names:
            (folder / n).parent.mkdir(parents=True, exist_ok=True)
            (folder / n).write_bytes(b"")
        (folder / "m.jsonl").write_text("\n".join(_emobox_line(dataset, n, "x") for n in names))
        assert sorted(read_corpus(folder / "m.jsonl").table["actor"]) == want


@pytest.fixture(scope="module")
def experiments(tmp_path_factory, ray_local):
    """The synthetic corpus in CREMA-D and in EmoDB layout, each through prepare, a short sweep
    (N_att 1 and 2, two seeds, two epochs) and report, by the CLI."""
    out = {}
    for layout in ("crema-d", "emodb"):
        work = tmp_path_factory.mktemp(layout)
        for args in (("corpus", "--out", work / "data", "--layout", layout, "--actors", 6, "--sample-rate", 8000),
                     ("prepare", "--data", work / "data", "--store", work / "store"),
                     ("sweep", "--store", work / "store", "--experiment-dir", work / "exp", "--no-tuned", "--n-att", "1,2",
                      "--seeds", 2, "--epochs", 2, "--cpus-per-trial", 1),
                     ("report", "--experiment-dir", work / "exp")):
            r = run(*args)
            assert r.exit_code == 0, (args[0], r.output)
        out[layout] = work
    return out


@pytest.mark.parametrize("layout, classes", [("crema-d", cremad.CLASSES), ("emodb", emodb.CLASSES)])
def test_another_corpus_goes_through_with_its_own_classes(experiments, layout, classes):
    work = experiments[layout]
    fs = load_store(str(work / "store"))
    assert fs.classes == classes and fs.corpus == layout and len(classes) == {"crema-d": 6, "emodb": 7}[layout]
    assert fs.manifest["corpus"]["classes"] == list(classes)
    if layout == "crema-d":  # sexes from VideoDemographics.csv, not from the id
        demo = pd.read_csv(work / "data" / "VideoDemographics.csv")
        assert fs.meta.drop_duplicates("actor").set_index("actor")["gender"].to_dict() == \
            {a: s.lower() for a, s in zip(demo["ActorID"], demo["Sex"])}
    df = pd.read_parquet(work / "exp" / "sweep" / "results.parquet")
    k = len(classes)
    for _, row in df.iterrows():
        cm = np.array([list(r) for r in row["confusion"]])
        assert row["corpus"] == layout and list(row["classes"]) == list(classes) and cm.shape == (k, k)
        present = cm.sum(1) > 0  # UAR: mean recall over this label set's classes that were tested
        assert row["uar"] == pytest.approx(float(np.mean(np.diag(cm)[present] / cm.sum(1)[present])))
        assert np.allclose(np.asarray(row["recall"])[present], np.diag(cm)[present] / cm.sum(1)[present])
    preds = pq.read_table(next((work / "exp" / "sweep" / "results.predictions").glob("*.parquet")))
    assert json.loads(preds.schema.metadata[b"classes"]) == list(classes)
    assert set(len(p) for p in preds.column("probs").to_pylist()) == {k}  # the model's output layer
    report = work / "exp" / "report"
    assert (report / "per_class.md").read_text().splitlines()[0] == "| Model | n | " + " | ".join(classes) + " |"
    stats = json.loads((report / "stats.json").read_text())
    assert stats["per_class"]["classes"] == list(classes)
    assert np.array(stats["per_class"]["confusion_summed_over_seeds"]["1"]).shape == (k, k)


def test_one_report_never_mixes_corpora(experiments, tmp_path):
    tables = [pd.read_parquet(experiments[layout] / "exp" / "sweep" / "results.parquet") for layout in ("crema-d", "emodb")]
    mixed = tmp_path / "mixed.parquet"
    pd.concat(tables, ignore_index=True).assign(seed=lambda d: range(len(d))).to_parquet(mixed)
    r = run("report", "--results", mixed, "--out", tmp_path / "report")
    assert r.exit_code == 5 and "rows of 2 corpora (crema-d: 4 rows, emodb: 4 rows): one report is of one corpus" in r.output
    assert not (tmp_path / "report").exists()
    r = run("compare", "--n-att", 1, f"a={experiments['crema-d'] / 'exp'}", f"b={experiments['emodb'] / 'exp'}")
    assert r.exit_code != 0 and "corpus" in r.output


def _touch(root: Path, *names: str) -> Path:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"")
    return root


def test_the_layout_is_detected_or_named(tmp_path):
    assert read_folder(_touch(tmp_path / "c", "AudioWAV/1001_IEO_HAP_HI.wav", "AudioWAV/1002_TIE_SAD_XX.wav")).name == "crema-d"
    assert read_folder(_touch(tmp_path / "e", "wav/03a01Fa.wav", "wav/08b10Lc.wav")).name == "emodb"
    # A stray name among a layout's gets that layout's precise error.
    with pytest.raises(CorpusError, match=r"1003_XYZ_SAD_XX\.wav: unknown sentence code XYZ"):
        read_folder(_touch(tmp_path / "c2", "AudioWAV/1001_IEO_HAP_HI.wav", "AudioWAV/1002_TIE_SAD_XX.wav",
                           "AudioWAV/1003_XYZ_SAD_XX.wav"))
    with pytest.raises(CorpusError, match=r"04a01Fa\.wav: unknown speaker 04"):
        read_folder(_touch(tmp_path / "e2", "wav/03a01Fa.wav", "wav/04a01Fa.wav", "wav/08a01Fa.wav"))
    with pytest.raises(CorpusError, match="fit no single known layout"):
        read_folder(_touch(tmp_path / "mixed", "a/1001_IEO_HAP_HI.wav", "b/03a01Fa.wav"))
    with pytest.raises(CorpusError, match="not an EmoDB name"):
        read_folder(_touch(tmp_path / "r", "Actor_01/03-01-05-02-01-01-01.wav"), layout="emodb")


def _manifest(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    _touch(tmp_path, "a.wav", "b.wav")
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize("text, problem", [
    ("path,label\na.wav,joy\n", r"m\.csv: line 2: no speaker \(speaker/spk/speaker_id/actor\)"),
    ("path,label,speaker\na.wav,joy,s1\nc.wav,joy,s2\n", r"m\.csv: line 3: audio file .*c\.wav not found"),
    ("path,speaker\na.wav,s1\n", r"m\.csv: line 2: no a label \(label/emotion/emo\)"),
    ("path,label,speaker,id\na.wav,joy,s1,u\n\nb.wav,calm,s2,u\n", r"m\.csv: utterance id u twice \(lines 2 and 4\)"),
    ("path,label,speaker\na.wav,joy,s1\n\nc.wav,joy,s2\n", r"m\.csv: line 4: audio file .*c\.wav not found"),  # blank lines count
    ("path,label,speaker,start,end\na.wav,joy,s1,2,1\n", r"m\.csv: line 2: end 1\.0 is not after start 2\.0"),
    ("path,label,speaker\na.wav,anger,s1\n", r"m\.csv: label 'anger' \(a\) is not in --labels \(joy, calm\)"),
])
def test_a_bad_manifest_is_one_line_naming_file_and_line(tmp_path, text, problem):
    m = _manifest(tmp_path, text)
    r = run("prepare", "--data", m, "--store", tmp_path / "store", "--labels", "joy,calm")
    assert r.exit_code == 3 and re.search(problem, r.output) and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "store").exists()


def test_manifest_details_a_spreadsheet_brings(tmp_path):
    """A byte-order mark, padded cells, and speakers "01" and "1" (two names, not one number)."""
    _touch(tmp_path, "a.wav", "b.wav", "c.wav")
    m = tmp_path / "m.csv"
    m.write_text("\ufeffPath, Label ,Speaker\na.wav, joy ,01\nb.wav,calm,1\nc.wav,joy,01\n", encoding="utf-8")
    c = read_corpus(m)
    assert c.classes == ("calm", "joy") and c.table.sort_values("utt_id")["actor"].tolist() == [1, 2, 1]
    assert c.record["speakers"] == {"1": "01", "2": "1"}
    lines = "\n".join(json.dumps({"wav": "a.wav", "emo": "x", "speaker": 3, "fold": f}) for f in ("train", "test"))
    (tmp_path / "split.jsonl").write_text(json.dumps({"wav": "a.wav", "emo": "x", "speaker": 3, "split": "train"}))
    assert "folds" not in read_corpus(tmp_path / "split.jsonl").record  # a split column is no fold column
    (tmp_path / "f.jsonl").write_text(lines)
    with pytest.raises(CorpusError, match="speaker 3 is in folds train and test"):
        read_corpus(tmp_path / "f.jsonl")


def test_segments_of_one_file_are_not_duplicates_but_the_same_stretch_is():
    from sertune.store.build import duplicate_groups

    t = pd.DataFrame({"utt_id": ["a_0-5", "a_5-9", "b", "b2"], "sha256": ["x", "x", "y", "y"],
                      "start": [0.0, 5.0, None, None], "end": [5.0, 9.0, None, None]})
    assert duplicate_groups(t) == [["b", "b2"]]


def test_options_that_would_be_ignored_are_refused(tmp_path):
    m = _manifest(tmp_path, "path,label,speaker\na.wav,joy,s1\n")
    r = run("prepare", "--data", m, "--store", tmp_path / "s", "--layout", "emodb")
    assert r.exit_code == 2 and "--layout emodb" in r.output and "is a manifest" in r.output
    r = run("prepare", "--data", tmp_path, "--store", tmp_path / "s", "--labels", "a,b")
    assert r.exit_code == 2 and "--labels: only with a manifest" in r.output
    (tmp_path / "m.txt").write_text("x")
    r = run("prepare", "--data", tmp_path / "m.txt", "--store", tmp_path / "s")
    assert r.exit_code == 3 and "a manifest is .csv or .jsonl" in r.output


def test_segments_of_a_longer_recording(real_16k, tmp_path, monkeypatch):
    """start/end cut utterances out of one file; the store says where each came from (a W3C media
    fragment) and holds the frames of that stretch; a segment past the end is refused by name."""
    wav = sorted(real_16k.glob("Actor_01/*.flac"))[0]
    m = tmp_path / "segments.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [
        {"wav": str(wav), "emo": "neutral", "speaker": "a", "start": 0, "end": 1.0},
        {"wav": str(wav), "emo": "neutral", "speaker": "a", "start": 1.0, "end": 2.5},
        {"wav": str(wav), "emo": "calm", "speaker": "b"}]))
    from sertune.audio import features

    decoded = []
    real_load = features._load_audio
    monkeypatch.setattr(features, "_load_audio", lambda path, sr: decoded.append(path) or real_load(path, sr))
    plan = plan_build(str(m), str(tmp_path / "store"), FeatureConfig(), force=False)
    build_store(plan, serial_runner)
    assert decoded == [str(wav), str(wav)]  # the two segments share one decoding; the whole file has its own
    fs = load_store(str(tmp_path / "store"))
    assert fs.meta["source"].tolist() == [f"{wav}#t=0,1", f"{wav}#t=1,2.5", str(wav)]  # outside the manifest's folder
    assert fs.lengths.tolist()[:2] == [101, 151]  # 10 ms hop, frames centred: 1 + samples // hop
    assert fs.classes == ("calm", "neutral") and fs.manifest["corpus"]["speakers"] == {"1": "a", "2": "b"}
    bad = tmp_path / "past.jsonl"
    bad.write_text(json.dumps({"wav": str(wav), "emo": "neutral", "speaker": "a", "start": 1.0, "end": 60}))
    with pytest.raises(CorpusError, match=rf"{re.escape(str(wav))}: segment 1-60 s reaches past the recording"):
        build_store(plan_build(str(bad), str(tmp_path / "store2"), FeatureConfig(), force=False), serial_runner)
    assert not (tmp_path / "store2").exists()


def test_speakers_without_genders_are_dealt_as_one_stratum():
    """Six groups of consecutive speakers, as for RAVDESS, but not by gender: 12 speakers of
    unknown gender test 11-12 and validate on 9-10; with genders the same rule balances them."""
    meta = pd.DataFrame({"actor": np.repeat(np.arange(1, 13), 2), "gender": "unknown", "label": 0})
    split = make_splits(meta, "speaker")[0]
    assert (split.train_actors, split.val_actors, split.test_actors) == (tuple(range(1, 9)), (9, 10), (11, 12))
    folds = make_splits(meta, "speaker", folds=3)
    assert [f.test_actors for f in folds] == [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12)]
    gendered = meta.assign(gender=np.where(meta.actor % 2, "male", "female"))
    assert make_splits(gendered, "speaker")[0].test_actors == (11, 12)  # one of each


def test_a_manifest_fold_column_is_speaker_folds_training_can_use(synth_corpus, tmp_path, ray_local):
    """A fold column (each speaker in one fold) becomes the store's speaker folds; `--actor-folds
    STORE` trains on them and every result records them; a speaker in two folds is refused."""
    rows = []
    for f in sorted(synth_corpus.glob("Actor_*/*.wav"))[::3]:  # a third of the files: folds, not accuracy, are tested
        emotion, actor = RAVDESS_NAME.match(f.stem).groups()
        rows.append({"wav": str(f), "emotion": EMOTIONS[int(emotion) - 1], "speaker": f"spk{actor}",
                     "fold": f"f{(int(actor) - 1) // 2}"})  # speakers 1-2, 3-4, 5-6
    m = tmp_path / "folds.csv"
    pd.DataFrame(rows).to_csv(m, index=False)
    store = tmp_path / "store"
    r = run("prepare", "--data", m, "--store", store)
    assert r.exit_code == 0 and f"3 speaker folds from the manifest's fold column" in r.output, r.output
    r = run("train", "--store", store, "--actor-folds", store, "--out", tmp_path / "run", "--epochs", 1)
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    folds = result["protocol"]["folds"]
    assert [f["test_actors"] for f in folds] == [[1, 2], [3, 4], [5, 6]]  # spk01.. numbered 1..6 in sorted order
    assert [f["val_actors"] for f in folds] == [[3, 4], [5, 6], [1, 2]]
    assert result["config"]["actor_folds"] == "1,2/3,4;3,4/5,6;5,6/1,2"
    rows[0]["fold"] = "f2"  # speaker 1 now in two folds
    pd.DataFrame(rows).to_csv(m, index=False)
    r = run("prepare", "--data", m, "--store", tmp_path / "store2")
    assert r.exit_code == 3 and "speaker 1 is in folds f2 and f0" in r.output
    r = run("train", "--store", synth_corpus, "--actor-folds", tmp_path / "nowhere", "--out", tmp_path / "r2")
    assert r.exit_code == 2 and "not a preset" in r.output
