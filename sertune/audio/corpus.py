"""Reading a RAVDESS-layout folder: `Actor_XX/MM-VV-EE-II-SS-RR-AA.{wav,flac}` -> a table.

The name carries every label, so the name is validated strictly: a wrong label silently
poisons every result downstream, while a loud error costs the user one rename.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from sertune.errors import CorpusError
from sertune.audio.labels import EMOTION_CODES, EMOTIONS, INTENSITIES, STATEMENTS, gender_of

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")
COLUMNS = ["utt_id", "path", "actor", "gender", "emotion", "label", "intensity", "statement", "repetition"]


def parse_name(path: Path) -> dict:
    """The seven name fields of one file, checked against the RAVDESS codes."""
    m = NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA, e.g. 03-01-05-02-01-01-12)")
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
    for ok, problem in checks:
        if not ok:
            raise CorpusError(f"{path}: {problem}")
    return {
        "utt_id": path.stem,
        "actor": int(actor),
        "gender": gender_of(int(actor)),
        "emotion": EMOTION_CODES[emotion],
        "label": EMOTIONS.index(EMOTION_CODES[emotion]),
        "intensity": INTENSITIES[intensity],
        "statement": int(statement),
        "repetition": int(repetition),
    }


def _audio_files(root: Path) -> list[Path]:
    """Every audio file under ``root``, following symbolic links (an Actor_XX folder linked in
    from elsewhere is a common way to assemble a corpus; ``Path.rglob`` skipped it silently).
    A link back into a folder already being walked would loop: that is refused."""
    files, walking = [], set()
    for folder, _, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in walking:
            raise CorpusError(f"{folder}: folder {real} reached twice through symbolic links (a link loop?)")
        walking.add(real)
        files += [Path(folder, n) for n in names
                  if Path(n).suffix.lower() in AUDIO_SUFFIXES and not n.startswith(".") and Path(folder, n).is_file()]
    return sorted(files)


def _check_folder(path: Path, actor: int) -> None:
    m = ACTOR_DIR.match(path.parent.name)
    if not m:
        raise CorpusError(f"{path}: not inside an Actor_XX folder")
    if int(m.group(1)) != actor:
        raise CorpusError(f"{path}: actor {actor:02d} file in folder {path.parent.name}")


def scan(root: str | Path) -> pd.DataFrame:
    """All utterances under ``root``, one row each, sorted by actor then name."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder")
    files = _audio_files(root)
    if not files:
        raise CorpusError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    rows, seen = [], {}
    for path in files:
        row = parse_name(path)
        _check_folder(path, row["actor"])
        if row["utt_id"] in seen:
            raise CorpusError(f"{path}: duplicate utterance, also at {seen[row['utt_id']]}")
        seen[row["utt_id"]] = path
        rows.append({**row, "path": os.path.abspath(path)})  # not resolved: a linked folder keeps its place
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["actor", "utt_id"], ignore_index=True)
