"""Fixed actor folds: named presets (the authors' five, EmoBox's six for RAVDESS), folds from a
file, or the folds a store recorded from its corpus manifest's fold column.

A fold names its test actors and its validation actors; every other actor trains. The folds
are kept in the training configuration as a compact spec, ``"test/val;test/val;..."`` with
comma-separated actor numbers, so that every result records exactly which folds made it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sertune.errors import ConfigError

# github.com/Mak-Sim/ResLSTM-SER, train.ipynb, get_kth_fold_inds ("same as paper"): test actors
# per fold [2,5,14,15,16], [3,6,7,13,18], [10,11,12,19,20], [8,17,21,23,24], [1,4,9,22];
# validation actors [3,6], [10,11], [8,17], [1,14], [2,5].
AUTHORS_5FOLD = "2,5,14,15,16/3,6;3,6,7,13,18/10,11;10,11,12,19,20/8,17;8,17,21,23,24/1,14;1,4,9,22/2,5"
# EmoBox (Ma et al., Interspeech 2024), RAVDESS: 6 folds of 4 test actors each; the benchmark
# names no validation speakers.
EMOBOX_RAVDESS_TEST = ((1, 11, 20, 21), (4, 10, 12, 14), (8, 9, 19, 23), (3, 5, 7, 24), (2, 15, 16, 18), (6, 13, 17, 22))


def next_fold_validates(tests) -> str:
    """Folds given by their test actors only: fold i validates on the test actors of fold i + 1
    (cyclically), the rule `--folds K` uses for its groups; every other actor trains. Deterministic,
    and each actor validates exactly once, as it tests exactly once."""
    return to_spec([(tuple(t), tuple(tests[(i + 1) % len(tests)])) for i, t in enumerate(tests)])


Fold = tuple[tuple[int, ...], tuple[int, ...]]  # (test actors, validation actors)


def parse(spec: str) -> list[Fold]:
    """The folds of a spec, checked: each fold has test and validation actors, disjoint."""
    folds = []
    for i, part in enumerate(spec.split(";")):
        try:
            test, val = part.split("/")
            fold = (tuple(int(a) for a in test.split(",")), tuple(int(a) for a in val.split(",")))
        except ValueError:
            raise ConfigError(f"actor folds: fold {i + 1} {part!r} is not 'test actors/validation actors', "
                              "e.g. 2,5,14/3,6") from None
        if set(fold[0]) & set(fold[1]):
            raise ConfigError(f"actor folds: fold {i + 1} tests and validates actor(s) "
                              f"{sorted(set(fold[0]) & set(fold[1]))}")
        folds.append(fold)
    if len(folds) < 2:
        raise ConfigError("actor folds: at least 2 folds")
    return folds


def to_spec(folds: list[Fold]) -> str:
    return ";".join(",".join(map(str, t)) + "/" + ",".join(map(str, v)) for t, v in folds)


PRESETS = {
    "authors-5fold": AUTHORS_5FOLD,
    "emobox-ravdess": next_fold_validates(EMOBOX_RAVDESS_TEST),
}


SPEC = re.compile(r"^[\d,;/\s]+$")


def resolve(value: str) -> str:
    """A preset name, a YAML/JSON file (a list of {test: [...], val: [...]}), a spec, or a store
    whose corpus manifest had a fold column -> the spec (what every result records)."""
    if value in PRESETS:
        return PRESETS[value]
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return to_spec(_read_file(path))
    if SPEC.match(value) and "/" in value:
        return to_spec(parse(value))
    return to_spec(parse(_store_folds(value)))


def _store_folds(location: str) -> str:
    from sertune.errors import StoreError
    from sertune.store.schema import read_manifest

    try:
        manifest = read_manifest(location)
    except StoreError:
        raise ConfigError(f"actor folds {location!r}: not a preset ({', '.join(PRESETS)}), a .yaml/.json file, "
                          "a spec 'test/val;test/val;...' or a feature store") from None
    folds = manifest["corpus"].get("folds")
    if not folds:
        raise ConfigError(f"actor folds {location}: this store records no folds (its corpus was not read from a "
                          "manifest with a fold column)")
    return folds


def _read_file(path: Path) -> list[Fold]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read actor folds ({str(e).splitlines()[0]})") from None
    try:
        tests = [tuple(int(a) for a in f["test"]) for f in data]
        if not any("val" in f for f in data):  # a benchmark's folds often name test speakers only
            return parse(next_fold_validates(tests))
        folds = [(t, tuple(int(a) for a in f["val"])) for t, f in zip(tests, data)]
    except (TypeError, KeyError, ValueError):
        raise ConfigError(f"{path}: actor folds are a list of {{test: [actors], val: [actors]}} "
                          "(val left out of every fold: the next fold's test actors validate)") from None
    return parse(to_spec(folds))


def check_partition(folds: list[Fold], actors: set[int]) -> None:
    """Pooled out-of-fold UAR needs every utterance predicted exactly once: the test actors of
    the folds must be the store's actors, each in one fold."""
    seen: dict[int, int] = {}
    for i, (test, val) in enumerate(folds):
        for a in test:
            if a in seen:
                raise ConfigError(f"actor folds: actor {a} is tested in folds {seen[a] + 1} and {i + 1}")
            seen[a] = i
        unknown = (set(test) | set(val)) - actors
        if unknown:
            raise ConfigError(f"actor folds: fold {i + 1} names actor(s) {sorted(unknown)} that the store does not hold")
    untested = actors - set(seen)
    if untested:
        raise ConfigError(f"actor folds: actor(s) {sorted(untested)} of the store are never tested")
