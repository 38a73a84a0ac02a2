"""A corpus described by a manifest: CSV or JSON Lines, one utterance per row or line.

Fields (the first name found of each; paths relative to the manifest's folder, or --audio-root):
  audio path   path | wav | audio | file                      (required)
  label        label | emotion | emo                          (required)
  speaker      speaker | spk | speaker_id | actor             (required, except EmoBox, below)
  id           utt_id | id | key                              (default: the file name's stem)
  gender       gender | sex                                   (default: unknown)
  start, end   seconds into the file: a segment of a longer recording (default: all of it)
  fold         fold: the fold whose test set holds the utterance; speaker-independent
               (each speaker in one fold), at least 3 folds: the store records them as speaker
               folds (fold i validates on fold i + 1's speakers), `--actor-folds STORE` uses them

EmoBox's manifests (github.com/emo-box/EmoBox, data/<dataset>/*.jsonl: key, dataset, wav, type,
sample_rate, num_frame, task, length, emo, channel) carry no speaker: it is derived as EmoBox's
own preparation scripts derive it (preprocess/scripts/<dataset>.py), from the file name.
The label set and its order come from ``labels`` (a label file, or a list) or else from the data,
sorted; never from RAVDESS.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from sertune.audio import emodb
from sertune.audio.corpus import Corpus, table
from sertune.audio.labels import gender_of
from sertune.errors import ConfigError, CorpusError

FIELDS = {
    "path": ("path", "wav", "audio", "file"),
    "label": ("label", "emotion", "emo"),
    "speaker": ("speaker", "spk", "speaker_id", "actor"),
    "utt_id": ("utt_id", "id", "key"),
    "gender": ("gender", "sex"),
    "start": ("start",),
    "end": ("end",),
    "fold": ("fold",),  # not "split": a train/val/test column is one partition, not speaker folds
}
MAX_SPEAKER_ID = 32767  # the store's actor column is int16
MAX_CLASSES = 127  # the store's label column is int8


def _ravdess_speaker(stem: str) -> tuple[str, str]:
    actor = int(stem.split("-")[6])  # ravdess.py: the 7th '-' field
    return str(actor), gender_of(actor)


def _cremad_speaker(stem: str) -> tuple[str, str]:
    return str(int(stem.split("_")[0])), "unknown"  # cremad.py: ActorID, the first '_' field


def _emodb_speaker(stem: str) -> tuple[str, str]:
    speaker = int(stem[:2])  # emodb.py reads a speaker list whose ids are the name's first two digits
    return str(speaker), emodb.SPEAKERS.get(speaker, ("unknown",))[0]


EMOBOX_SPEAKERS = {"ravdess": _ravdess_speaker, "cremad": _cremad_speaker, "emodb": _emodb_speaker}


def read_labels(value: str) -> tuple[str, ...]:
    """``--labels``: a file with one class name per line, or names separated by commas."""
    path = Path(value).expanduser()
    names = path.read_text().splitlines() if path.is_file() else value.split(",")
    names = tuple(n.strip() for n in names if n.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"--labels {value}: at least 2 class names, each once")
    return names


def _records(path: Path) -> list[tuple[int, dict]]:
    """The manifest's rows as (line number, dict), keys lower-case and values stripped, with
    one-line errors naming the file and line."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise CorpusError(f"{path}: a manifest is .csv or .jsonl (JSON Lines), not {suffix or 'a file without suffix'}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: a spreadsheet's byte-order mark
            return _csv(f) if suffix == ".csv" else _jsonl(f, path)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CorpusError(f"{path}: cannot read the manifest ({str(e).splitlines()[0]})") from None


def _clean(record: dict) -> dict:
    return {str(k).strip().lower(): v.strip() if isinstance(v, str) else v for k, v in record.items()}


def _csv(f) -> list[tuple[int, dict]]:
    reader = csv.DictReader(f)
    return [(reader.line_num, _clean(r)) for r in reader if any((v or "").strip() for v in r.values())]


def _jsonl(f, path: Path) -> list[tuple[int, dict]]:
    records = []
    for i, line in enumerate(f, start=1):
        if line.strip():
            try:
                records.append((i, _clean(json.loads(line))))
            except (ValueError, AttributeError) as e:
                raise CorpusError(f"{path}: line {i}: not a JSON object ({e})") from None
    return records


def _field(record: dict, name: str):
    return next((record[k] for k in FIELDS[name] if record.get(k) not in (None, "")), None)


def _row(record: dict, where: str, root: Path) -> dict:
    """One manifest row as a corpus row (speaker still as named), checked."""
    audio, label = _field(record, "path"), _field(record, "label")
    if audio is None or label is None:
        missing = "an audio path (" + "/".join(FIELDS["path"]) + ")" if audio is None else \
            "a label (" + "/".join(FIELDS["label"]) + ")"
        raise CorpusError(f"{where}: no {missing}")
    path = Path(audio) if os.path.isabs(audio) else root / audio
    if not path.is_file():
        raise CorpusError(f"{where}: audio file {path} not found (paths are relative to {root}; see --audio-root)")
    speaker, gender = _field(record, "speaker"), _field(record, "gender")
    if speaker is None:
        derive = EMOBOX_SPEAKERS.get(str(record.get("dataset", "")).lower())
        if derive is None:
            raise CorpusError(f"{where}: no speaker (" + "/".join(FIELDS["speaker"]) + "); speaker-independent "
                              "folds need one for every utterance")
        speaker, derived_gender = derive(path.stem)
        gender = gender or derived_gender
    start, end = (_seconds(_field(record, k), k, where) for k in ("start", "end"))
    if start is not None and end is not None and not end > start:
        raise CorpusError(f"{where}: end {end} is not after start {start}")
    stem = path.stem if start is None and end is None else f"{path.stem}_{start or 0:g}-{'end' if end is None else f'{end:g}'}"
    return {"utt_id": str(_field(record, "utt_id") or stem), "path": str(path.absolute()), "speaker": str(speaker),
            "gender": _gender(gender), "emotion": str(label), "intensity": None, "statement": None,
            "repetition": None, "start": start, "end": end, "fold": _field(record, "fold")}


def _seconds(value, name: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise CorpusError(f"{where}: {name} {value!r} is not a number of seconds") from None
    if not seconds >= 0:
        raise CorpusError(f"{where}: {name} {value!r} is negative")
    return seconds


def _gender(value) -> str:
    g = str(value or "").strip().lower()
    return {"m": "male", "f": "female"}.get(g, g if g in ("male", "female") else "unknown")


def speaker_ids(names: list[str]) -> tuple[list[int], dict[int, str]]:
    """Speakers as the store's integer actor ids: numbers stay themselves (RAVDESS's 1-24,
    CREMA-D's 1001-1091); other names are numbered 1..K in sorted order, and the map is recorded.
    Names that are one number written two ways ("01", "1") are names: merging them would put
    two speakers' utterances on both sides of a speaker-independent split."""
    unique = set(names)
    if all(n.isdigit() and int(n) <= MAX_SPEAKER_ID for n in unique) and len({int(n) for n in unique}) == len(unique):
        return [int(n) for n in names], {}
    numbering = {name: i for i, name in enumerate(sorted(set(names)), start=1)}
    return [numbering[n] for n in names], {i: name for name, i in numbering.items()}


def _natural(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def speaker_folds(path: Path, folds: list, speakers: list[int], lines: list[int]) -> str | None:
    """A fold column as speaker folds (the spec `--actor-folds` takes), or None without one. A
    speaker in two folds would be trained and tested on: refused, as is a column with gaps."""
    if all(f is None for f in folds):
        return None
    missing = next((i for i, f in enumerate(folds) if f is None), None)
    if missing is not None:
        raise CorpusError(f"{path}: line {lines[missing]}: no fold, while other rows have one")
    of: dict[int, str] = {}
    for speaker, fold in zip(speakers, map(str, folds)):
        if of.setdefault(speaker, fold) != fold:
            raise CorpusError(f"{path}: speaker {speaker} is in folds {of[speaker]} and {fold}: the fold column must "
                              "keep each speaker in one fold (speaker-independent)")
    names = sorted(set(of.values()), key=_natural)
    if len(names) < 3:
        raise CorpusError(f"{path}: {len(names)} fold(s) in the fold column; speaker folds need at least 3 "
                          "(each fold validates on the next one's speakers, the rest train)")
    from sertune.training.folds import next_fold_validates

    return next_fold_validates([sorted(s for s, f in of.items() if f == name) for name in names])


def read(path: Path, labels: tuple[str, ...] | None = None, audio_root: str | None = None) -> Corpus:
    """The corpus a manifest describes."""
    root = Path(audio_root).expanduser() if audio_root else path.parent
    records = _records(path)
    if not records:
        raise CorpusError(f"{path}: the manifest lists no utterance")
    lines = [i for i, _ in records]
    rows = [_row(r, f"{path}: line {i}", root) for i, r in records]
    found = sorted({r["emotion"] for r in rows})
    classes = labels or tuple(found)
    if len(classes) > MAX_CLASSES:
        raise CorpusError(f"{path}: {len(classes)} classes; the store holds at most {MAX_CLASSES}")
    unknown = [r for r in rows if r["emotion"] not in classes]
    if unknown:
        raise CorpusError(f"{path}: label {unknown[0]['emotion']!r} ({unknown[0]['utt_id']}) is not in --labels "
                          f"({', '.join(classes)})")
    ids, names = speaker_ids([r.pop("speaker") for r in rows])
    folds = speaker_folds(path, [r.pop("fold") for r in rows], ids, lines)
    seen: dict[str, int] = {}
    for i, (row, actor) in enumerate(zip(rows, ids)):
        row["actor"] = actor
        if row["utt_id"] in seen:
            raise CorpusError(f"{path}: utterance id {row['utt_id']} twice (lines {lines[seen[row['utt_id']]]} and {lines[i]})")
        seen[row["utt_id"]] = i
    record = {"manifest": str(path), "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "speakers": {str(k): v for k, v in names.items()}, **({"folds": folds} if folds else {})}
    return Corpus("manifest", tuple(classes), table(rows, tuple(classes)), str(root), record)
