"""Speakers as a source of error: Δ's bootstrap over actors and seeds, from per-utterance predictions.

A run's UAR is measured on RAVDESS's 24 speakers, the same 24 in every run, so seeds alone
cannot tell how far Δ would move on other speakers. Resampling actors (each with all of its
utterances, in every run at once: both arms heard the same people) adds that uncertainty;
resampling seeds as well gives the two-level, speaker-clustered CI. The speaker-only and seed-only
bootstraps say which of the two dominates, and the speaker-only one is the floor that more seeds
cannot lower.

Everything runs on counts: per run, actor and class, the utterances and the correct ones, so a
resample of actors is one matrix product (weights × counts), not a regrouping of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from sertune.errors import ResultsError

N_RESAMPLES = 10_000
SEED = 0  # the bootstraps' own generator: a report is the same every time it is drawn


@dataclass(frozen=True)
class Counts:
    """One arm's runs as counts. ``correct``/``total``: runs × actors × classes."""

    seeds: np.ndarray
    actors: np.ndarray
    correct: np.ndarray
    total: np.ndarray

    def uar(self, weights: np.ndarray) -> np.ndarray:
        """Each run's UAR with actors weighted (``weights``: batch × actors) -> batch × runs."""
        r, a, c = self.correct.shape
        hit = (weights @ self.correct.transpose(1, 0, 2).reshape(a, r * c)).reshape(-1, r, c)
        n = (weights @ self.total.transpose(1, 0, 2).reshape(a, r * c)).reshape(-1, r, c)
        present = n > 0  # a class none of the drawn actors has is not a class of that resample
        recall = np.divide(hit, n, out=np.zeros_like(hit), where=present)
        return recall.sum(-1) / present.sum(-1)


def counts(pred: pd.DataFrame, n_att: int, seeds, actors: np.ndarray, n_classes: int) -> Counts:
    """The counts of arm ``n_att`` over ``seeds`` (every seed must have predictions)."""
    arm = pred[pred["n_att"] == n_att]
    missing = sorted(set(int(s) for s in seeds) - set(arm["seed"].astype(int)))
    if missing:
        raise ResultsError(f"predictions: no per-utterance predictions for n_att={n_att} seed={missing[0]} "
                           "(a row without its predictions file)")
    seeds = np.asarray(sorted(int(s) for s in seeds))
    si = np.searchsorted(seeds, arm["seed"].to_numpy(int))
    keep = np.isin(arm["seed"].to_numpy(int), seeds)
    ai = np.searchsorted(actors, arm["actor"].to_numpy(int))
    label = arm["label_id"].to_numpy(int)
    hit = (arm["pred_id"].to_numpy(int) == label).astype(float)
    total = np.zeros((len(seeds), len(actors), n_classes))
    correct = np.zeros_like(total)
    np.add.at(total, (si[keep], ai[keep], label[keep]), 1.0)
    np.add.at(correct, (si[keep], ai[keep], label[keep]), hit[keep])
    return Counts(seeds, actors, correct, total)


def _weights(idx: np.ndarray, n: int) -> np.ndarray:
    """Resampled indices (batch × n) -> how often each was drawn (batch × n)."""
    idx = np.atleast_2d(idx).astype(int)
    w = np.zeros((idx.shape[0], n))
    np.add.at(w, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return w


@dataclass(frozen=True)
class SpeakerResult:
    diff: float  # the observed Δ (all actors, all runs): equals the table's diff
    clustered_low: float  # two-level percentile interval (actors and seeds), at ``confidence``
    clustered_high: float
    clustered_low90: float  # the 90 % interval: its bounds are the one-sided 95 % bounds of the verdict
    clustered_high90: float
    se_clustered: float
    se_speakers: float  # actors resampled, runs fixed: what more seeds cannot remove
    se_seeds: float  # seeds resampled, actors fixed
    paired: bool  # seeds resampled jointly (the arms share every seed) or each arm on its own
    run_sd_speakers_a: float  # sd of one run's UAR over resampled actors, root mean square over runs
    run_sd_speakers_b: float
    n_actors: int
    n_resamples: int

    @property
    def dominant(self) -> str:
        return "speakers" if self.se_speakers > self.se_seeds else "seeds"


def bootstrap_diff(a: Counts, b: Counts, confidence: float = 0.95, n_resamples: int = N_RESAMPLES) -> SpeakerResult:
    """Δ = mean UAR(b) − mean UAR(a), bootstrapped three ways with scipy.stats.bootstrap."""
    n_act = len(a.actors)
    paired = len(a.seeds) == len(b.seeds) and bool((a.seeds == b.seeds).all())

    def delta(w_act, ia, ib):
        ua, ub = a.uar(w_act), b.uar(w_act)  # batch × runs
        return ((np.take_along_axis(ub, ib, 1).mean(1) if ib is not None else ub.mean(1))
                - (np.take_along_axis(ua, ia, 1).mean(1) if ia is not None else ua.mean(1)))

    # scipy calls each statistic with index arrays: batch × n when resampling, plain n for the
    # observed value (then a scalar is due).
    def clustered(act, *seed_idx, axis=-1):
        ia, ib = (seed_idx[0], seed_idx[0]) if paired else seed_idx
        return _shaped(delta(_weights(act, n_act), np.atleast_2d(ia), np.atleast_2d(ib)), act)

    def speakers_only(act, axis=-1):
        return _shaped(delta(_weights(act, n_act), None, None), act)

    def seeds_only(*seed_idx, axis=-1):
        ia, ib = (seed_idx[0], seed_idx[0]) if paired else seed_idx
        w = np.ones((np.atleast_2d(ia).shape[0], n_act))
        return _shaped(delta(w, np.atleast_2d(ia), np.atleast_2d(ib)), seed_idx[0])

    act = np.arange(n_act)
    seeds = (np.arange(len(a.seeds)),) if paired else (np.arange(len(a.seeds)), np.arange(len(b.seeds)))
    common = dict(n_resamples=n_resamples, vectorized=True, method="percentile", batch=500)
    two = sps.bootstrap((act, *seeds), clustered, confidence_level=confidence, rng=np.random.default_rng(SEED),
                        **common)
    # The same resamples (same generator, same draws) cut at 90 %: the verdict's one-sided bounds.
    two90 = sps.bootstrap((act, *seeds), clustered, confidence_level=0.90, rng=np.random.default_rng(SEED),
                          bootstrap_result=two, n_resamples=0, vectorized=True, method="percentile")
    spk = sps.bootstrap((act,), speakers_only, rng=np.random.default_rng(SEED + 1), **common)
    sds = sps.bootstrap(seeds, seeds_only, rng=np.random.default_rng(SEED + 2), **common)
    observed = float(delta(np.ones((1, n_act)), None, None)[0])
    return SpeakerResult(
        diff=observed,
        clustered_low=float(two.confidence_interval.low), clustered_high=float(two.confidence_interval.high),
        clustered_low90=float(two90.confidence_interval.low), clustered_high90=float(two90.confidence_interval.high),
        se_clustered=float(two.standard_error), se_speakers=float(spk.standard_error),
        se_seeds=float(sds.standard_error), paired=paired,
        run_sd_speakers_a=_run_sd(a, n_resamples), run_sd_speakers_b=_run_sd(b, n_resamples),
        n_actors=n_act, n_resamples=n_resamples,
    )


def _shaped(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Batch last, and no batch axis for an unbatched call."""
    out = np.moveaxis(out, 0, -1)
    return out[..., 0] if np.ndim(like) == 1 else out


def _run_sd(arm: Counts, n_resamples: int) -> float:
    """How far one run's UAR moves when its 24 speakers are redrawn: the speaker component of a
    run's variance (scipy's bootstrap standard error of each run's UAR, pooled over runs)."""
    n_act = len(arm.actors)
    res = sps.bootstrap((np.arange(n_act),), lambda act, axis=-1: _shaped(arm.uar(_weights(act, n_act)), act),
                        n_resamples=min(n_resamples, 2000), vectorized=True, method="percentile", batch=500,
                        rng=np.random.default_rng(SEED + 3))
    return float(np.sqrt(np.mean(np.square(res.standard_error))))


def for_pair(pred: pd.DataFrame, seeds_a, seeds_b, n_att_b: int, baseline: int, n_classes: int,
             confidence: float = 0.95, n_resamples: int = N_RESAMPLES) -> SpeakerResult:
    """The bootstrap of one comparison (``n_att_b`` against ``baseline``) from the pooled predictions."""
    actors = np.asarray(sorted(pred["actor"].astype(int).unique()))
    a = counts(pred, baseline, seeds_a, actors, n_classes)
    b = counts(pred, n_att_b, seeds_b, actors, n_classes)
    return bootstrap_diff(a, b, confidence, n_resamples)
