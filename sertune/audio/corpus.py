"""Reading a corpus: a folder in one of the layouts whose file names carry the labels (RAVDESS,
CREMA-D, EmoDB), or a manifest (sertune/audio/manifest.py) -> one table of utterances, its label
set and where it came from. The label set, not RAVDESS, decides the model's classes downstream.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sertune.audio import cremad, emodb, ravdess
from sertune.errors import CorpusError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# One row per utterance. start/end (seconds) cut a segment out of a longer file; None: all of it.
COLUMNS = ["utt_id", "path", "actor", "gender", "emotion", "label", "intensity", "statement", "repetition",
           "start", "end"]
parse_name = ravdess.parse_name  # the RAVDESS reader's name check, as before other layouts existed


@dataclass(frozen=True)
class Layout:
    """A corpus whose file names carry speaker and emotion."""

    name: str
    classes: tuple[str, ...]  # the label set, in the order of the model's outputs
    pattern: object  # compiled regex of a file name's stem
    example: str
    parse: Callable[[Path], dict]  # a stem's fields, or CorpusError naming the file
    check: Callable[[Path, dict], None] = lambda path, row: None  # where the file sits
    genders: Callable[[Path], dict[int, str]] = lambda root: {}  # speaker -> gender from a side file


LAYOUTS = {
    "ravdess": Layout("ravdess", ravdess.CLASSES, ravdess.NAME, ravdess.EXAMPLE, ravdess.parse_name,
                      ravdess.check_folder),
    "crema-d": Layout("crema-d", cremad.CLASSES, cremad.NAME, cremad.EXAMPLE, cremad.parse_name,
                      genders=cremad.genders),
    "emodb": Layout("emodb", emodb.CLASSES, emodb.NAME, emodb.EXAMPLE, emodb.parse_name),
}


@dataclass
class Corpus:
    """What a store is built from: the utterances, the label set, and what the store records of
    the source (the layout or manifest, the manifest's SHA-256, speaker names)."""

    name: str  # "ravdess", "crema-d", "emodb", or "manifest"
    classes: tuple[str, ...]
    table: pd.DataFrame  # COLUMNS, sorted by actor then utt_id
    root: str  # the folder that audio paths are relative to
    record: dict = field(default_factory=dict)


def audio_files(root: Path) -> list[Path]:
    """Every audio file under ``root``, following symbolic links (a speaker folder linked in
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


def detect(files: list[Path]) -> Layout:
    """The layout most file names fit (then every file is checked against it, so a stray name
    gets that layout's precise error); none or a tie is an error that says what to do."""
    fits = {name: sum(bool(lay.pattern.match(f.stem)) for f in files) for name, lay in LAYOUTS.items()}
    best = max(fits.values())
    winners = [name for name, n in fits.items() if n == best]
    if best == 0 or len(winners) > 1:
        known = "; ".join(f"{lay.name} e.g. {lay.example}" for lay in LAYOUTS.values())
        raise CorpusError(f"{files[0].parent}: file names fit no single known layout ({known}); "
                          "pass --layout, or describe the corpus in a manifest (--data FILE.csv|.jsonl)")
    return LAYOUTS[winners[0]]


def read_folder(root: str | Path, layout: str = "auto") -> Corpus:
    """A layout folder's utterances, every name checked; ``layout`` "auto" detects it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder")
    files = audio_files(root)
    if not files:
        raise CorpusError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    lay = detect(files) if layout == "auto" else LAYOUTS[layout]
    rows, seen = [], {}
    for path in files:
        row = lay.parse(path)
        lay.check(path, row)
        if row["utt_id"] in seen:
            raise CorpusError(f"{path}: duplicate utterance, also at {seen[row['utt_id']]}")
        seen[row["utt_id"]] = path
        rows.append({**row, "path": os.path.abspath(path)})  # not resolved: a linked folder keeps its place
    genders = lay.genders(root)
    for row in rows:
        row["gender"] = genders.get(row["actor"], row["gender"])
    return Corpus(lay.name, lay.classes, table(rows, lay.classes), str(root))


def table(rows: list[dict], classes: tuple[str, ...]) -> pd.DataFrame:
    """Rows as the corpus table: labels as indices into ``classes``, sorted by actor then id."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["label"] = [classes.index(e) for e in df["emotion"]]
    return df.sort_values(["actor", "utt_id"], ignore_index=True)


def read_corpus(data: str | Path, layout: str = "auto", labels: tuple[str, ...] | None = None,
                audio_root: str | None = None) -> Corpus:
    """A folder in a known layout, or a manifest file (CSV, JSON Lines)."""
    path = Path(data).expanduser()
    if path.is_file():
        from sertune.audio import manifest

        return manifest.read(path, labels=labels, audio_root=audio_root)
    return read_folder(path, layout)


def scan(root: str | Path, layout: str = "auto") -> pd.DataFrame:
    """All utterances of a layout folder, one row each, sorted by actor then name."""
    return read_folder(root, layout).table
