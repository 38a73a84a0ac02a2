"""A corpus described by a manifest: CSV or JSON Lines, one utterance per row or line.

Fields (the first name found of each; paths relative to the manifest's folder, or --audio-root):
  audio path   path | wav | audio | file                      (required)
  label        label | emotion | emo                          (required)
  speaker      speaker | spk | speaker_id | actor             (required, except EmoBox, below)
  id           utt_id | id | key                              (default: the file name's stem)
  gender       gender | sex                                   (default: unknown)
  start, end   seconds into the file: a segment of a longer recording (default: all of it)
  fold         fold | split: the fold whose test set holds the utterance; speaker-independent
               (each speaker in one fold), at least 3 folds: the store records them as speaker
               folds (fold i validates on fold i + 1's speakers), `--actor-folds STORE` uses them

EmoBox's manifests (github.com/emo-box/EmoBox, data/<dataset>/*.jsonl: key, dataset, wav, type,
sample_rate, num_frame, task, length, emo, channel) carry no speaker: it is derived as EmoBox's
own preparation scripts derive it (preprocess/scripts/<dataset>.py), from the file name.
The label set and its order come from ``labels`` (a label file, or a list) or else from the data,
sorted; never from RAVDESS.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

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
    "fold": ("fold", "split"),
}
MAX_SPEAKER_ID = 32767  # the store's actor column is int16


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


def _records(path: Path) -> list[dict]:
    """The manifest's rows as dicts, with one-line errors naming the file and line."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            return [{k.strip().lower(): v for k, v in r.items()} for r in df.to_dict("records")]
        if suffix in (".jsonl", ".ndjson"):
            records = []
            for i, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    try:
                        records.append({k.lower(): v for k, v in json.loads(line).items()})
                    except (ValueError, AttributeError) as e:
                        raise CorpusError(f"{path}: line {i}: not a JSON object ({e})") from None
            return records
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise CorpusError(f"{path}: cannot read the manifest ({str(e).splitlines()[0]})") from None
    raise CorpusError(f"{path}: a manifest is .csv or .jsonl (JSON Lines), not {suffix or 'a file without suffix'}")


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
    CREMA-D's 1001-1091); other names are numbered 1..K in sorted order, and the map is recorded."""
    if all(n.isdigit() and int(n) <= MAX_SPEAKER_ID for n in names):
        return [int(n) for n in names], {}
    numbering = {name: i for i, name in enumerate(sorted(set(names)), start=1)}
    return [numbering[n] for n in names], {i: name for name, i in numbering.items()}


def _natural(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def speaker_folds(path: Path, folds: list, speakers: list[int], line: int) -> str | None:
    """A fold column as speaker folds (the spec `--actor-folds` takes), or None without one. A
    speaker in two folds would be trained and tested on: refused, as is a column with gaps."""
    if all(f is None for f in folds):
        return None
    missing = next((i for i, f in enumerate(folds) if f is None), None)
    if missing is not None:
        raise CorpusError(f"{path}: line {missing + 1 + line}: no fold, while other rows have one")
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
    line = 1 if path.suffix.lower() == ".csv" else 0  # a CSV's first data row is line 2
    rows = [_row(r, f"{path}: line {i + 1 + line}", root) for i, r in enumerate(records)]
    found = sorted({r["emotion"] for r in rows})
    classes = labels or tuple(found)
    unknown = [r for r in rows if r["emotion"] not in classes]
    if unknown:
        raise CorpusError(f"{path}: label {unknown[0]['emotion']!r} ({unknown[0]['utt_id']}) is not in --labels "
                          f"({', '.join(classes)})")
    ids, names = speaker_ids([r.pop("speaker") for r in rows])
    folds = speaker_folds(path, [r.pop("fold") for r in rows], ids, line)
    seen: dict[str, int] = {}
    for i, (row, actor) in enumerate(zip(rows, ids)):
        row["actor"] = actor
        if row["utt_id"] in seen:
            raise CorpusError(f"{path}: utterance id {row['utt_id']} twice (rows {seen[row['utt_id']] + 1} and {i + 1})")
        seen[row["utt_id"]] = i
    record = {"manifest": str(path), "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "speakers": {str(k): v for k, v in names.items()}, **({"folds": folds} if folds else {})}
    return Corpus("manifest", tuple(classes), table(rows, tuple(classes)), str(root), record)
