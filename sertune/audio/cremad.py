"""CREMA-D's file names: the one place that maps them to meanings.

`AudioWAV/1001_DFA_ANG_XX.wav` = ActorID_Sentence_Emotion_Level: 91 actors (1001-1091), 12
sentences, 6 emotions, 4 levels (only sentence IEO was recorded at graded levels); each actor's
sex is in `VideoDemographics.csv` (ActorID, Age, Sex, Race, Ethnicity), not in the name.
Source: the corpus's README, github.com/CheyneyComputerScience/CREMA-D.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from sertune.errors import CorpusError

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
EXAMPLE = "1001_DFA_ANG_XX"
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
EMOTION_CODES = {"NEU": "neutral", "HAP": "happy", "SAD": "sad", "ANG": "angry", "FEA": "fearful", "DIS": "disgust"}
CLASSES = tuple(EMOTION_CODES.values())  # RAVDESS's names and order for the emotions both have
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
DEMOGRAPHICS = "VideoDemographics.csv"


def parse_name(path: Path) -> dict:
    """The four name fields of one file, checked against CREMA-D's codes."""
    m = NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: not a CREMA-D name (expected ActorID_Sentence_Emotion_Level, e.g. {EXAMPLE})")
    actor, sentence, emotion, level = m.groups()
    checks = [
        (1001 <= int(actor) <= 9999, f"actor id {actor} out of range (CREMA-D: 1001-1091)"),
        (sentence in SENTENCES, f"unknown sentence code {sentence} ({', '.join(SENTENCES)})"),
        (emotion in EMOTION_CODES, f"unknown emotion code {emotion} ({', '.join(EMOTION_CODES)})"),
        (level in LEVELS, f"unknown level code {level} ({', '.join(LEVELS)})"),
    ]
    CorpusError.check(path, checks)
    return {"utt_id": path.stem, "actor": int(actor), "gender": "unknown", "emotion": EMOTION_CODES[emotion],
            "intensity": LEVELS[level], "statement": SENTENCES.index(sentence) + 1, "repetition": 1}


def genders(root: Path) -> dict[int, str]:
    """ActorID -> male/female from VideoDemographics.csv, looked for in the corpus folder and the
    folder above it (where the corpus keeps it beside AudioWAV/); {} where there is none."""
    for folder in (root, root.parent):
        path = folder / DEMOGRAPHICS
        if path.is_file():
            try:
                df = pd.read_csv(path)
                return {int(a): str(s).strip().lower() for a, s in zip(df["ActorID"], df["Sex"])}
            except (KeyError, ValueError, OSError) as e:
                raise CorpusError(f"{path}: cannot read ActorID and Sex ({str(e).splitlines()[0]})") from None
    return {}
