from pathlib import Path

import pytest

from sertune.audio.corpus import parse_name, scan
from sertune.errors import CorpusError


def touch(root: Path, rel: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def test_parse_name_fields():
    row = parse_name(Path("Actor_12/03-01-05-02-01-02-12.wav"))
    assert row == {"utt_id": "03-01-05-02-01-02-12", "actor": 12, "gender": "female", "emotion": "angry",
                   "intensity": "strong", "statement": 1, "repetition": 2}
    assert parse_name(Path("03-01-08-01-02-01-01.flac"))["gender"] == "male"


@pytest.mark.parametrize("name, problem", [
    ("03-01-09-01-01-01-01", "unknown emotion"),
    ("03-02-05-01-01-01-01", "song"),
    ("01-01-05-01-01-01-01", "modality"),
    ("03-01-01-02-01-01-01", "neutral has no strong"),
    ("03-01-05-03-01-01-01", "intensity"),
    ("03-01-05-01-03-01-01", "statement"),
    ("03-01-05-01-01-03-01", "repetition"),
    ("angry_take1", "not a RAVDESS name"),
])
def test_parse_name_rejects(name, problem):
    with pytest.raises(CorpusError, match=problem) as e:
        parse_name(Path(f"Actor_01/{name}.wav"))
    assert name in e.value.message and "\n" not in e.value.message


def test_scan_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such folder"):
        scan(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    touch(tmp_path / "empty", "Actor_01/readme.txt")
    with pytest.raises(CorpusError, match="no audio files"):
        scan(tmp_path / "empty")
    touch(tmp_path / "wrong", "Actor_02/03-01-05-01-01-01-01.wav")
    with pytest.raises(CorpusError, match="actor 01 file in folder Actor_02"):
        scan(tmp_path / "wrong")
    touch(tmp_path / "dup", "Actor_01/03-01-05-01-01-01-01.wav")
    touch(tmp_path / "dup", "Actor_01/03-01-05-01-01-01-01.flac")
    with pytest.raises(CorpusError, match="duplicate utterance"):
        scan(tmp_path / "dup")
    touch(tmp_path / "flat", "03-01-05-01-01-01-01.wav")
    with pytest.raises(CorpusError, match="not inside an Actor_XX folder"):
        scan(tmp_path / "flat")


def test_synthetic_corpus_is_ravdess_shaped(synth_corpus):
    df = scan(synth_corpus)
    assert len(df) == 6 * 60
    assert sorted(df.actor.unique()) == [1, 2, 3, 4, 5, 6]
    assert df.groupby("actor").size().eq(60).all()
    per_emotion = df.groupby("emotion").size()
    assert per_emotion["neutral"] == 6 * 4 and per_emotion["angry"] == 6 * 8
    assert set(df.gender) == {"male", "female"}


@pytest.mark.realdata
def test_scan_real_corpus(real_16k):
    df = scan(real_16k)
    assert len(df) == 1440 and df.actor.nunique() == 24
    assert df.groupby("actor").size().eq(60).all()
    assert df.groupby("emotion").size().to_dict() == {
        "angry": 192, "calm": 192, "disgust": 192, "fearful": 192, "happy": 192, "neutral": 96, "sad": 192, "surprised": 192}
