"""RAVDESS's file names: `Actor_XX/MM-VV-EE-II-SS-RR-AA.{wav,flac}`, every label in the name.

The name is validated strictly: a wrong label silently poisons every result downstream, while a
loud error costs the user one rename.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertune.audio.labels import EMOTION_CODES, EMOTIONS, INTENSITIES, STATEMENTS, gender_of
from sertune.errors import CorpusError

NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
EXAMPLE = "03-01-05-02-01-01-12"
ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")
CLASSES = EMOTIONS


def parse_name(path: Path) -> dict:
    """The seven name fields of one file, checked against the RAVDESS codes."""
    m = NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA, e.g. {EXAMPLE})")
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    checks = [
        (modality == "03", f"modality {modality} is not 03 (audio-only)"),
        (channel == "01", f"vocal channel {channel} is not 01 (speech); song is not supported"),
        (emotion in EMOTION_CODES, f"unknown emotion code {emotion} (01-08)"),
        (intensity in INTENSITIES, f"unknown intensity code {intensity} (01-02)"),
        (not (emotion == "01" and intensity == "02"), "neutral has no strong intensity (02)"),
        (statement in STATEMENTS, f"unknown statement code {statement} (01-02)"),
        (repetition in ("01", "02"), f"unknown repetition code {repetition} (01-02)"),
        (1 <= int(actor) <= 99, f"actor code {actor} out of range"),
    ]
    CorpusError.check(path, checks)
    return {
        "utt_id": path.stem,
        "actor": int(actor),
        "gender": gender_of(int(actor)),
        "emotion": EMOTION_CODES[emotion],
        "intensity": INTENSITIES[intensity],
        "statement": int(statement),
        "repetition": int(repetition),
    }


def check_folder(path: Path, row: dict) -> None:
    """A file sits in its own actor's folder: a file in the wrong one is a copying mistake."""
    m = ACTOR_DIR.match(path.parent.name)
    if not m:
        raise CorpusError(f"{path}: not inside an Actor_XX folder")
    if int(m.group(1)) != row["actor"]:
        raise CorpusError(f"{path}: actor {row['actor']:02d} file in folder {path.parent.name}")
