"""The built-in corpus: synthetic 'speech' in RAVDESS layout, generated with numpy.

It is not speech. Each emotion is a recipe of the cues an MFCC + LSTM model can pick up —
pitch level and contour, syllable rate, loudness, spectral tilt, breathiness — and every actor
has their own voice (pitch, formants, tempo), so a speaker-independent split is a real test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

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
}
VOWELS = [(700, 1200), (400, 2000), (300, 2300), (500, 900), (600, 1700)]  # (F1, F2) Hz


def _contour(kind: str, t: np.ndarray, strength: float) -> np.ndarray:
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


def _voice(actor: int, rng) -> dict:
    male = gender_of(actor) == "male"
    return {
        "f0": rng.uniform(95, 135) if male else rng.uniform(175, 235),
        "formant": rng.uniform(0.9, 1.0) if male else rng.uniform(1.05, 1.18),
        "tempo": rng.uniform(0.88, 1.12),
        "gain": rng.uniform(0.7, 1.0),
    }


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


def write_corpus(out: str | Path, actors: int = 8, seed: int = 0, sample_rate: int = 16000) -> int:
    """Write ``actors`` x 60 WAV files under ``out/Actor_XX``; returns the file count."""
    out = Path(out)
    count = 0
    for actor in range(1, actors + 1):
        rng = np.random.default_rng([seed, actor])
        voice = _voice(actor, rng)
        folder = out / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, emotion, intensity, statement, _rep in utterance_names(actor):
            strength = 1.0 if intensity == 1 else 1.6
            audio = synthesize(RECIPES[emotion], voice, statement, strength, rng, sample_rate)
            sf.write(folder / f"{name}.wav", audio, sample_rate, subtype="PCM_16")
            count += 1
    return count
