"""The built-in corpus: synthetic 'speech' generated with numpy, in the file layout of RAVDESS
(the default), CREMA-D or EmoDB, so each corpus's reader can be tested without the real data.

It is not speech. Each emotion is a recipe of the cues an MFCC + LSTM model can pick up —
pitch level and contour, syllable rate, loudness, spectral tilt, breathiness — and every actor
has their own voice (pitch, formants, tempo), so a speaker-independent split is a real test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sertune.audio import cremad, emodb
from sertune.audio.labels import EMOTIONS, gender_of


@dataclass(frozen=True)
class Recipe:
    pitch: float  # multiple of the speaker's base f0
    contour: str  # flat | rise | fall | vibrato | dip | jump
    rate: float  # syllables per second
    loudness: float
    tilt: float  # harmonic roll-off exponent: higher is darker
    breath: float  # noise-to-voice ratio


RECIPES = {
    "neutral": Recipe(1.00, "flat", 4.0, 0.45, 1.4, 0.02),
    "calm": Recipe(0.92, "fall", 3.0, 0.30, 1.9, 0.05),
    "happy": Recipe(1.30, "rise", 5.0, 0.65, 1.0, 0.02),
    "sad": Recipe(0.82, "fall", 2.6, 0.25, 2.2, 0.08),
    "angry": Recipe(1.22, "jump", 5.6, 0.95, 0.7, 0.04),
    "fearful": Recipe(1.42, "vibrato", 6.0, 0.45, 1.3, 0.15),
    "disgust": Recipe(0.95, "dip", 3.4, 0.55, 1.6, 0.10),
    "surprised": Recipe(1.50, "rise", 4.4, 0.80, 1.1, 0.03),
    # EmoDB's 7th class: low, monotone, slow, quiet and dark like sad, but flat where sad falls
    # and hardly breathy, so the two stay apart on more than one cue.
    "boredom": Recipe(0.86, "flat", 2.9, 0.28, 2.0, 0.03),
}
VOWELS = [(700, 1200), (400, 2000), (300, 2300), (500, 900), (600, 1700)]  # (F1, F2) Hz


def _contour(kind: str, t: np.ndarray, strength: float) -> np.ndarray:
    """The f0 multiplier over time for one contour shape."""
    x = t / t[-1]
    shapes = {
        "flat": np.zeros_like(x),
        "rise": 0.35 * x,
        "fall": -0.3 * x,
        "vibrato": 0.08 * np.sin(2 * np.pi * 7 * t),
        "dip": 0.5 * (x - 0.5) ** 2 - 0.12,
        "jump": 0.2 * (np.sin(2 * np.pi * 3 * t) > 0.3),
    }
    return np.exp(strength * shapes[kind])


def synthesize(recipe: Recipe, voice: dict, statement: int, strength: float, rng, sr: int) -> np.ndarray:
    """One utterance: ``5 + statement`` syllables of ``voice`` saying ``recipe`` at ``strength``."""
    n_syll = 5 + statement
    dur = n_syll / (recipe.rate * voice["tempo"]) * rng.uniform(0.95, 1.05)
    t = np.arange(int(dur * sr)) / sr
    f0 = voice["f0"] * recipe.pitch ** strength * _contour(recipe.contour, t, strength)
    f0 *= 1 + 0.01 * rng.standard_normal(len(t)).cumsum() / np.sqrt(len(t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    syll = np.minimum((t * n_syll / dur).astype(int), n_syll - 1)
    vowel = np.array(VOWELS)[(syll + statement) % len(VOWELS)] * voice["formant"]
    harmonics = np.arange(1, 40)[:, None]
    freq = harmonics * f0[None, :]
    env = sum(np.exp(-(((freq - vowel[None, :, j]) / (90 + 60 * j)) ** 2)) for j in range(2))
    amp = harmonics ** -(recipe.tilt / strength ** 0.5) * (0.2 + env) * (freq < sr / 2 - 200)
    voice_sig = (amp * np.sin(harmonics * phase[None, :])).sum(axis=0)
    syll_env = np.sin(np.pi * ((t * n_syll / dur) % 1.0)) ** 2
    sig = syll_env * (voice_sig / (np.abs(voice_sig).max() + 1e-9) + recipe.breath * strength * rng.standard_normal(len(t)))
    sig *= recipe.loudness ** strength * voice["gain"]
    pad = np.zeros(int(0.15 * sr))
    out = np.concatenate([pad, sig, pad]) + 0.002 * rng.standard_normal(len(sig) + 2 * len(pad))
    return (out / max(1.0, np.abs(out).max() / 0.99)).astype(np.float32)


def _voice(gender: str, rng) -> dict:
    """A speaker's voice; takes the gender rather than the actor number because only RAVDESS
    derives one from the other (four draws, in this order, as the stored RAVDESS output needs)."""
    male = gender == "male"
    return {
        "f0": rng.uniform(95, 135) if male else rng.uniform(175, 235),
        "formant": rng.uniform(0.9, 1.0) if male else rng.uniform(1.05, 1.18),
        "tempo": rng.uniform(0.88, 1.12),
        "gain": rng.uniform(0.7, 1.0),
    }


# One file to write: (path relative to the corpus root, emotion, strength, statement).
Utterance = tuple[str, str, float, int]


def utterance_names(actor: int) -> list[tuple[str, str, int, int, int]]:
    """RAVDESS's 60 speech files per actor: (name, emotion, intensity, statement, repetition)."""
    out = []
    for e_i, emotion in enumerate(EMOTIONS, start=1):
        for intensity in ((1,) if emotion == "neutral" else (1, 2)):
            for statement in (1, 2):
                for rep in (1, 2):
                    name = f"03-01-{e_i:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-{actor:02d}"
                    out.append((name, emotion, intensity, statement, rep))
    return out


def _statement(index: int) -> int:
    """The `synthesize` statement for the index-th sentence or text: 1 or 2, as RAVDESS's two,
    so every layout's utterances last about as long (a few seconds)."""
    return 1 + index % 2


def _ravdess_speakers(actors: int) -> list[tuple[int, str]]:
    """Actors 1..n, odd ones male (RAVDESS's rule)."""
    return [(actor, gender_of(actor)) for actor in range(1, actors + 1)]


def _ravdess_files(actor: int) -> list[Utterance]:
    """Actor_XX/<name>.wav for each of `utterance_names`; strong intensity is strength 1.6."""
    return [(f"Actor_{actor:02d}/{name}.wav", emotion, 1.0 if intensity == 1 else 1.6, statement)
            for name, emotion, intensity, statement, _rep in utterance_names(actor)]


CREMAD_STRENGTH = {"LO": 0.7, "MD": 1.0, "HI": 1.6, "XX": 1.0}  # XX: no level asked for


def _cremad_speakers(actors: int) -> list[tuple[int, str]]:
    """Actor ids 1001.., with RAVDESS's alternation on k = 1.. so both sexes are half."""
    return [(1000 + k, gender_of(k)) for k in range(1, actors + 1)]


def _cremad_levels(sentence: str, emotion: str) -> tuple[str, ...]:
    """As CREMA-D was recorded: only sentence IEO at graded levels, and neutral never graded."""
    if sentence == "IEO" and emotion != "neutral":
        return tuple(level for level in cremad.LEVELS if level != "XX")
    return ("XX",)


def _cremad_files(actor: int) -> list[Utterance]:
    """AudioWAV/{actor}_{sentence}_{emotion}_{level}.wav: 12 sentences x 6 emotions, IEO x 3
    levels in the five non-neutral ones — 82 files."""
    return [(f"AudioWAV/{actor}_{sentence}_{code}_{level}.wav", emotion, CREMAD_STRENGTH[level], _statement(s_i))
            for s_i, sentence in enumerate(cremad.SENTENCES)
            for code, emotion in cremad.EMOTION_CODES.items()
            for level in _cremad_levels(sentence, emotion)]


def _cremad_demographics(out: Path, speakers: list[tuple[int, str]]) -> None:
    """VideoDemographics.csv beside AudioWAV/: CREMA-D keeps each actor's sex there, not in names."""
    rows = ["ActorID,Age,Sex,Race,Ethnicity"]
    rows += [f"{actor},{20 + actor % 40},{gender.title()},Unknown,Not Hispanic" for actor, gender in speakers]
    (out / cremad.DEMOGRAPHICS).write_text("\n".join(rows) + "\n")


def _emodb_speakers(actors: int) -> list[tuple[int, str]]:
    """The first n of EmoDB's ten speakers, male and female in turn so 6 give 3 + 3."""
    if actors > len(emodb.SPEAKERS):
        raise ValueError(f"EmoDB has {len(emodb.SPEAKERS)} speakers; cannot write {actors}")
    by_sex = [[s for s, (sex, _age) in emodb.SPEAKERS.items() if sex == want] for want in ("male", "female")]
    order = [s for pair in zip(*by_sex) for s in pair]
    return [(s, emodb.SPEAKERS[s][0]) for s in order[:actors]]


def _emodb_files(speaker: int) -> list[Utterance]:
    """wav/{speaker:02d}{text}{letter}a.wav: 10 texts x 7 emotions, one version — 70 files."""
    return [(f"wav/{speaker:02d}{text}{letter}a.wav", emotion, 1.0, _statement(t_i))
            for t_i, text in enumerate(emodb.TEXTS)
            for letter, emotion in emodb.EMOTION_CODES.items()]


@dataclass(frozen=True)
class Layout:
    speakers: Callable[[int], list[tuple[int, str]]]  # actors -> [(corpus's speaker id, gender)]
    files: Callable[[int], list[Utterance]]  # speaker id -> that speaker's files
    extra: Callable[[Path, list[tuple[int, str]]], None] | None = None  # files besides the audio


LAYOUTS = {
    "ravdess": Layout(_ravdess_speakers, _ravdess_files),
    "crema-d": Layout(_cremad_speakers, _cremad_files, _cremad_demographics),
    "emodb": Layout(_emodb_speakers, _emodb_files),
}


def write_corpus(out: str | Path, actors: int = 8, seed: int = 0, sample_rate: int = 16000,
                 layout: str = "ravdess") -> int:
    """Write ``actors`` speakers' WAV files under ``out`` in ``layout`` (one of LAYOUTS: RAVDESS's
    Actor_XX/ with 60 each, CREMA-D's AudioWAV/ with 82 each plus VideoDemographics.csv, EmoDB's
    wav/ with 70 each); returns the file count."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (valid: {', '.join(LAYOUTS)})")
    spec, out = LAYOUTS[layout], Path(out)
    speakers = spec.speakers(actors)
    count = 0
    for speaker, gender in speakers:
        # One stream per speaker, seeded by its id: the RAVDESS files stay what they always were.
        rng = np.random.default_rng([seed, speaker])
        voice = _voice(gender, rng)
        for rel, emotion, strength, statement in spec.files(speaker):
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            audio = synthesize(RECIPES[emotion], voice, statement, strength, rng, sample_rate)
            sf.write(path, audio, sample_rate, subtype="PCM_16")
            count += 1
    if spec.extra:
        spec.extra(out, speakers)
    return count
