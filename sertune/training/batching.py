"""Normalised, length-bucketed batches from pre-padded tensors (no per-batch Python padding)."""

from __future__ import annotations

import torch

from sertune.store.load import FeatureSet


def normalize(fs: FeatureSet, train_idx: torch.Tensor, mode: str, stats=None) -> torch.Tensor:
    """Normalised copy of the padded features; padding stays zero.

    ``global`` uses mean/std per coefficient over the training utterances' frames only, so no
    statistic ever comes from validation or test speakers. ``utterance`` is per-utterance CMVN.
    """
    x, lengths = fs.features, fs.lengths
    mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)  # (N, T, 1)
    if mode == "utterance":
        n = lengths.clamp(min=1)[:, None, None].double()
        s1, s2 = x.sum(1, keepdim=True, dtype=torch.float64), x.square().sum(1, keepdim=True, dtype=torch.float64)
        mean = s1 / n
        std = (s2 / n - mean.square()).clamp(min=0).sqrt()
        mean, std = mean.float(), std.float()
    else:
        mean, std = stats if stats is not None else train_statistics(fs, train_idx)
    return (x - mean).div_(std.clamp(min=1e-5)).mul_(mask)


def train_statistics(fs: FeatureSet, train_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coefficient mean and std over the real frames of the training utterances.

    Padding is zero, so sums over padded rows are sums over real frames: no masked gather.
    """
    x = fs.features[train_idx]
    n = float(fs.lengths[train_idx].sum())
    s1, s2 = x.sum((0, 1), dtype=torch.float64), x.square().sum((0, 1), dtype=torch.float64)
    mean = s1 / n
    var = (s2 - n * mean.square()) / (n - 1)
    return mean.float(), var.clamp(min=0).sqrt().float()


class BucketBatches:
    """Batches of similar length, in random order, from an index set.

    Indices are shuffled, cut into pools of ``pool`` batches, each pool is sorted by length and
    cut into batches, and the batches are shuffled: little padding, yet every epoch differs.
    """

    def __init__(self, idx: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                 pool: int = 16):
        self.idx, self.lengths, self.batch_size, self.gen, self.pool = idx, lengths, batch_size, generator, pool

    def __iter__(self):
        perm = self.idx[torch.randperm(len(self.idx), generator=self.gen)]
        batches = []
        for pool in perm.split(self.batch_size * self.pool):
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            batches += list(pool.split(self.batch_size))
        order = torch.randperm(len(batches), generator=self.gen)
        return iter([batches[i] for i in order])

    def __len__(self) -> int:
        return -(-len(self.idx) // self.batch_size)


def sorted_batches(idx: torch.Tensor, lengths: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
    """Deterministic batches for evaluation."""
    return list(idx[torch.argsort(lengths[idx], stable=True)].split(batch_size))


def gather(features: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, batch: torch.Tensor):
    """A batch trimmed to its own longest utterance."""
    t = int(lengths[batch].max())
    return features[batch, :t], lengths[batch], labels[batch]
