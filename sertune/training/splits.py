"""Who trains, who validates, who tests: speaker-independent by default.

Actor groups are gender-balanced: males and females are dealt into groups separately (where a
corpus does not give every speaker's gender, speakers are dealt as one stratum).
On RAVDESS (odd actors male) the default split is test = 21-24, validation = 17-20,
train = 1-16; `--folds K` rotates K such groups through the test and validation roles;
`--actor-folds` gives the folds actor by actor (the authors' five are a preset). With
`--split random`, utterances are stratified by emotion: one 70/15/15 split, or K folds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sertune.errors import ConfigError
from sertune.training.folds import check_partition
from sertune.training.folds import parse as parse_folds


@dataclass(frozen=True)
class Split:
    kind: str
    train: np.ndarray  # utterance indices
    val: np.ndarray
    test: np.ndarray
    train_actors: tuple[int, ...] = ()
    val_actors: tuple[int, ...] = ()
    test_actors: tuple[int, ...] = ()
    fold: int | None = None

    def describe(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("train", "val", "test")}
        d.update(n_train=len(self.train), n_val=len(self.val), n_test=len(self.test))
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _strata(meta: pd.DataFrame) -> list[list[int]]:
    """The actors to deal separately: males and females where every actor's gender is known,
    else all actors as one (a manifest without genders; CREMA-D without VideoDemographics.csv)."""
    actors = meta.drop_duplicates("actor").sort_values("actor")
    if set(actors.gender) <= {"male", "female"}:
        return [s for s in (actors[actors.gender == g].actor.tolist() for g in ("male", "female")) if s]
    return [actors.actor.tolist()]


def _have(strata: list[list[int]]) -> str:
    return f"{len(strata[0])} male, {len(strata[1])} female" if len(strata) == 2 else f"{len(strata[0])} of unknown or one gender"


def actor_groups(meta: pd.DataFrame, k: int) -> list[list[int]]:
    """k groups of consecutive actors, gender-balanced where genders are known."""
    strata = _strata(meta)
    if min(map(len, strata)) < k:
        raise ConfigError(f"{k} gender-balanced actor groups need >= {k} actors of each gender ({_have(strata)})")
    return [sorted(a for part in parts for a in part.tolist()) for parts in zip(*(np.array_split(s, k) for s in strata))]


def _from_actors(meta: pd.DataFrame, train, val, test, fold=None) -> Split:
    idx = lambda actors: np.flatnonzero(meta.actor.isin(actors).to_numpy())  # noqa: E731
    return Split("speaker", idx(train), idx(val), idx(test), tuple(train), tuple(val), tuple(test), fold)


def speaker_split(meta: pd.DataFrame, groups: int = 6) -> Split:
    """Last group tests, the one before validates, the rest trains."""
    strata = _strata(meta)
    g = actor_groups(meta, min(groups, *map(len, strata)))
    if len(g) < 3:
        raise ConfigError(f"a speaker-independent split needs at least 3 actors of each gender ({_have(strata)})")
    return _from_actors(meta, sum(g[:-2], []), g[-2], g[-1])


def speaker_folds(meta: pd.DataFrame, k: int) -> list[Split]:
    if k < 3:
        raise ConfigError("--folds needs K >= 3 (train, validation and test groups)")
    g = actor_groups(meta, k)
    out = []
    for i in range(k):
        test, val = g[i], g[(i + 1) % k]
        train = [a for j, grp in enumerate(g) if j not in (i, (i + 1) % k) for a in grp]
        out.append(_from_actors(meta, train, val, test, fold=i))
    return out


def random_split(meta: pd.DataFrame, seed: int = 0, val: float = 0.15, test: float = 0.15) -> Split:
    """Utterances stratified by emotion; speakers are shared between the parts. Byte-identical
    utterances (``dup_group``, from the store's manifest) all go where the first of them went:
    one copy in training and another in test would be a leak."""
    rng = np.random.default_rng(seed)
    part = pd.Series("", index=meta.index)
    for _, group in meta.groupby("label"):
        idx = rng.permutation(group.index.to_numpy())
        n_test, n_val = round(len(idx) * test), round(len(idx) * val)
        part.loc[idx[:n_test]] = "test"
        part.loc[idx[n_test : n_test + n_val]] = "val"
        part.loc[idx[n_test + n_val :]] = "train"
    if "dup_group" in meta:  # each group where its first member (in store order) was dealt
        part = meta["dup_group"].map(part.groupby(meta["dup_group"]).first())
    return Split("random", *(np.flatnonzero((part == p).to_numpy()) for p in ("train", "val", "test")))


def fixed_actor_folds(meta: pd.DataFrame, spec: str) -> list[Split]:
    """Folds given actor by actor (training/folds.py), e.g. the authors' five."""
    folds = parse_folds(spec)
    check_partition(folds, set(meta.actor.unique().tolist()))
    actors = sorted(meta.actor.unique().tolist())
    return [_from_actors(meta, [a for a in actors if a not in test and a not in val], list(val), list(test), fold=i)
            for i, (test, val) in enumerate(folds)]


def random_folds(meta: pd.DataFrame, k: int, seed: int = 0) -> list[Split]:
    """Stratified utterance K-fold: each emotion's utterances dealt round-robin into K parts after
    a shuffle; fold i tests part i, validates part i+1, trains on the rest. Speakers are shared;
    byte-identical utterances stay in one part, as in `random_split`."""
    if k < 3:
        raise ConfigError("--folds needs K >= 3 (train, validation and test parts)")
    rng = np.random.default_rng(seed)
    part = np.empty(len(meta), dtype=np.int64)
    for _, group in meta.groupby("label"):
        idx = rng.permutation(group.index.to_numpy())
        part[idx] = (np.arange(len(idx)) + rng.integers(k)) % k  # random offset: no part always gets the remainder
    if "dup_group" in meta:  # byte-identical utterances share the part of their group's first member
        by_group = pd.Series(part, index=meta.index).groupby(meta["dup_group"]).first()
        part = meta["dup_group"].map(by_group).to_numpy()
    out = []
    for i in range(k):
        test, val = np.flatnonzero(part == i), np.flatnonzero(part == (i + 1) % k)
        train = np.flatnonzero((part != i) & (part != (i + 1) % k))
        out.append(Split("random", train, val, test, fold=i))
    return out


def make_splits(meta: pd.DataFrame, kind: str, folds: int = 0, split_seed: int = 0, actor_folds: str = "") -> list[Split]:
    if kind == "random":
        return random_folds(meta, folds, split_seed) if folds else [random_split(meta, split_seed)]
    if kind != "speaker":
        raise ConfigError(f"unknown split {kind!r} (speaker or random)")
    if actor_folds:
        return fixed_actor_folds(meta, actor_folds)
    return speaker_folds(meta, folds) if folds and folds > 1 else [speaker_split(meta)]
