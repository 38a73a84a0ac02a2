"""EmoDB's (Berlin Database of Emotional Speech) file names: the one place that maps them to
meanings.

`wav/03a01Fa.wav` = speaker (2 digits), text (a01 ... b10), emotion (German initial), version:
10 speakers, 10 texts, 7 emotions, 535 utterances at 16 kHz. Sources: emodb.bilderbar.info, as
quoted in audeering/audformat's EmoDB example (speakers' sex and age), and EmoBox's EmoDB data.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertune.errors import CorpusError

NAME = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])$")
EXAMPLE = "03a01Fa"
SPEAKERS = {3: ("male", 31), 8: ("female", 34), 9: ("female", 21), 10: ("male", 32), 11: ("male", 26),
            12: ("male", 30), 13: ("female", 32), 14: ("female", 35), 15: ("male", 25), 16: ("female", 31)}
TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
# W Wut (anger), L Langeweile (boredom), E Ekel (disgust), A Angst (fear), F Freude (happiness),
# T Trauer (sadness), N neutral.
EMOTION_CODES = {"N": "neutral", "F": "happy", "T": "sad", "W": "angry", "A": "fearful", "E": "disgust", "L": "boredom"}
CLASSES = tuple(EMOTION_CODES.values())  # RAVDESS's names and order for the emotions both have, then boredom


def parse_name(path: Path) -> dict:
    """The four name fields of one file, checked against EmoDB's codes."""
    m = NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: not an EmoDB name (expected speaker, text, emotion, version, e.g. {EXAMPLE})")
    speaker, text, emotion, version = m.groups()
    checks = [
        (int(speaker) in SPEAKERS, f"unknown speaker {speaker} (EmoDB: {', '.join(f'{s:02d}' for s in SPEAKERS)})"),
        (text in TEXTS, f"unknown text code {text} ({', '.join(TEXTS)})"),
        (emotion in EMOTION_CODES, f"unknown emotion letter {emotion} ({', '.join(EMOTION_CODES)})"),
    ]
    CorpusError.check(path, checks)
    return {"utt_id": path.stem, "actor": int(speaker), "gender": SPEAKERS[int(speaker)][0],
            "emotion": EMOTION_CODES[emotion], "intensity": None, "statement": TEXTS.index(text) + 1,
            "repetition": ord(version) - ord("a") + 1}
