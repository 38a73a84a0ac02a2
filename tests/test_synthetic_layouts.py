"""The synthetic corpus in each corpus's file layout: names that corpus's reader accepts, its
classes and counts, each voice's sex where that corpus keeps it, and RAVDESS's files unchanged.

Written at 2 kHz with 6 actors (the fewest a speaker split accepts): synthesis time grows with
the samples written, and this file should take seconds even on a busy 2-core machine.
"""

import hashlib
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertune.audio import cremad, emodb
from sertune.audio.corpus import parse_name as ravdess_parse_name
from sertune.audio.labels import EMOTIONS
from sertune.audio.synthetic import RECIPES, _emodb_speakers, write_corpus

ROOT = Path(__file__).resolve().parents[1]
SR = 2000
ACTORS = 6
# layout -> (folder of the audio, parse_name, classes, files per actor)
LAYOUTS = {
    "ravdess": (None, ravdess_parse_name, set(EMOTIONS), 60),
    "crema-d": ("AudioWAV", cremad.parse_name, set(cremad.EMOTION_CODES.values()), 82),
    "emodb": ("wav", emodb.parse_name, set(emodb.EMOTION_CODES.values()), 70),
}
# SHA-256 of two files written by write_corpus(out, actors=6, seed=0, sample_rate=2000) before the
# other layouts existed: a check that still holds once this change is HEAD.
STORED = {"Actor_01/03-01-01-01-01-01-01.wav": "5aec73e2324affc0e6a0320bfad01e30a333bcd0306a0502a68fd5418d5b8e51",
          "Actor_06/03-01-05-02-02-01-06.wav": "41bdf143324cd72bc5a18d144b45f0ee510b08eea0b572f4bdbb20a34ed99444"}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def written(request, tmp_path_factory):
    """(layout, corpus root, count write_corpus returned, {file: parse_name's row})."""
    layout = request.param
    out = tmp_path_factory.mktemp(layout)
    n = write_corpus(out, actors=ACTORS, seed=0, sample_rate=SR, layout=layout)
    folder, parse, _classes, _per_actor = LAYOUTS[layout]
    files = sorted((out / folder if folder else out).rglob("*.wav"))
    return layout, out, n, {f: parse(f) for f in files}


def f0(path: Path, up: int = 8) -> float:
    """A file's pitch by autocorrelation, interpolated ``up`` times (at 2 kHz a period is only ~10
    samples): the shortest lag in 70-300 Hz whose peak is within 10% of the best, since the longer
    ones are octave errors. Within ~1% of the voice's f0 for neutral files."""
    x = sf.read(path)[0]
    n = 2 * len(x)  # zero padding: a linear, not circular, autocorrelation
    r = np.fft.irfft(np.abs(np.fft.rfft(x, n)) ** 2, up * n)[: up * SR // 60]
    lo, hi = up * SR // 300, up * SR // 70
    best = r[lo:hi].max()
    peaks = [k for k in range(lo, hi) if r[k] >= 0.9 * best and r[k] >= r[k - 1] and r[k] >= r[k + 1]]
    return up * SR / peaks[0]


def test_counts_names_and_classes(written):
    layout, _out, n, rows = written
    _folder, _parse, classes, per_actor = LAYOUTS[layout]
    assert n == len(rows) == ACTORS * per_actor
    assert set(Counter(r["actor"] for r in rows.values()).values()) == {per_actor}
    assert {r["emotion"] for r in rows.values()} == classes


def test_files_are_mono_wavs_at_the_rate(written):
    _layout, _out, _n, rows = written
    for path in rows:
        info = sf.info(path)
        assert (info.format, info.channels, info.samplerate) == ("WAV", 1, SR), path
        assert 0.8 < info.duration < 6.0, path  # a few seconds, as RAVDESS's


def sexes(layout: str, out: Path, rows: dict) -> dict[int, str]:
    """actor -> sex as each corpus tells it: in the name, or CREMA-D's VideoDemographics.csv."""
    if layout == "crema-d":
        df = pd.read_csv(out / cremad.DEMOGRAPHICS)
        assert list(df.columns) == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
        assert set(df.Sex) <= {"Male", "Female"} and df.Age.between(18, 80).all()
        assert cremad.genders(out / "AudioWAV") == {int(a): s.lower() for a, s in zip(df.ActorID, df.Sex)}
        return cremad.genders(out / "AudioWAV")
    return {r["actor"]: r["gender"] for r in rows.values()}


def test_each_voice_has_its_sex(written):
    layout, out, _n, rows = written
    told = sexes(layout, out, rows)
    actors = {r["actor"] for r in rows.values()}
    assert set(told) == actors
    assert Counter(told.values()) == {"male": 3, "female": 3}
    for actor in actors:
        neutral = [f for f, r in rows.items() if r["actor"] == actor and r["emotion"] == "neutral"]
        pitch = float(np.median([f0(f) for f in neutral]))
        # Voices: male f0 95-135 Hz, female 175-235 Hz; neutral keeps the base pitch.
        assert (pitch < 155) == (told[actor] == "male"), (actor, told[actor], pitch)


@pytest.mark.parametrize("written", ["crema-d"], indirect=True)
def test_cremad_levels_as_recorded(written):
    _layout, _out, _n, rows = written
    graded = Counter((f.stem.split("_")[1], r["emotion"], r["intensity"]) for f, r in rows.items())
    for (sentence, emotion, level), count in graded.items():
        assert count == ACTORS
        assert (level != "unspecified") == (sentence == "IEO" and emotion != "neutral")
    assert {lvl for (s, e, lvl) in graded if s == "IEO" and e == "angry"} == {"low", "medium", "high"}


def test_emodb_speakers_are_emodbs():
    spoken = {3: "male", 8: "female", 10: "male", 9: "female", 11: "male", 13: "female"}
    assert dict(_emodb_speakers(6)) == spoken
    assert all(emodb.SPEAKERS[s][0] == sex for s, sex in _emodb_speakers(10))


def head_module(monkeypatch) -> types.ModuleType:
    """sertune/audio/synthetic.py as committed at HEAD, loaded as a module of its own (in
    sys.modules for the test's length: dataclasses look their module up there)."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:sertune/audio/synthetic.py"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git checkout to read HEAD from")
    module = types.ModuleType("synthetic_at_head")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(src, "HEAD:sertune/audio/synthetic.py", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("written", ["ravdess"], indirect=True)
def test_ravdess_unchanged(written, tmp_path, monkeypatch):
    _layout, ours, _n, _rows = written
    # Each actor has a random stream of its own, so HEAD's first 2 actors are ours' first 2.
    theirs = tmp_path / "head"
    head_module(monkeypatch).write_corpus(theirs, actors=2, seed=0, sample_rate=SR)
    names = sorted(p.relative_to(theirs) for p in theirs.rglob("*.wav"))
    assert sorted(p.relative_to(ours) for p in ours.glob("Actor_0[12]/*.wav")) == names and len(names) == 120
    assert all((ours / n).read_bytes() == (theirs / n).read_bytes() for n in names)
    assert {n: hashlib.sha256((ours / n).read_bytes()).hexdigest() for n in STORED} == STORED


def test_boredom_is_its_own_recipe():
    def cues_apart(a, b):
        return sum(abs(getattr(a, c) - getattr(b, c)) > 0.1 * abs(getattr(b, c))
                   for c in ("pitch", "rate", "loudness", "tilt", "breath")) + (a.contour != b.contour)

    assert cues_apart(RECIPES["boredom"], RECIPES["sad"]) >= 2
    assert cues_apart(RECIPES["boredom"], RECIPES["neutral"]) >= 2


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="ravdess, crema-d, emodb"):
        write_corpus(tmp_path, actors=1, layout="iemocap")
    with pytest.raises(ValueError, match="10 speakers"):
        write_corpus(tmp_path, actors=11, layout="emodb")
    assert not any(tmp_path.iterdir())  # refused before writing anything
