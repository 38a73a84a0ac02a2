"""Normalised, length-bucketed batches from packed frames: each batch is padded to its own
longest utterance, so memory follows the data, not the corpus's longest item."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sertune.store.load import FeatureSet, pad


@dataclass
class Sequences:
    """Utterances packed back to back, (frames, D), on any device; ``batch`` pads on the fly."""

    frames: torch.Tensor
    offsets: torch.Tensor
    lengths: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """As the padded (N, T_max, D) tensor would be; nothing of that size exists."""
        return len(self.lengths), int(self.lengths.max()), self.frames.shape[1]

    def to(self, device) -> Sequences:
        return Sequences(self.frames.to(device), self.offsets.to(device), self.lengths.to(device))

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        return pad(self.frames, self.offsets, self.lengths, idx)

    def padded(self) -> torch.Tensor:
        """Everything padded to the longest: for inspection and tests only."""
        return self.batch(torch.arange(len(self.lengths), device=self.frames.device))


def _utterance_of_frame(lengths: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(lengths)), lengths)


def normalize(fs: FeatureSet, train_idx: torch.Tensor, mode: str, stats=None) -> Sequences:
    """Normalised copy of the features, packed.

    ``global`` uses mean/std per coefficient over the training utterances' frames only, so no
    statistic ever comes from validation or test speakers. ``utterance`` is per-utterance CMVN.
    ``corpus`` uses every utterance's frames (see ``norm_statistics``).
    """
    x, lengths = fs.frames, fs.lengths
    if mode == "utterance":
        utt = _utterance_of_frame(lengths)
        n = lengths.clamp(min=1)[:, None].double()
        s1 = torch.zeros(len(lengths), x.shape[1], dtype=torch.float64).index_add_(0, utt, x.double())
        s2 = torch.zeros(len(lengths), x.shape[1], dtype=torch.float64).index_add_(0, utt, x.double().square())
        mean = s1 / n
        std = (s2 / n - mean.square()).clamp(min=0).sqrt()
        mean, std = mean.float()[utt], std.float()[utt]
    else:
        mean, std = stats if stats is not None else norm_statistics(fs, train_idx, mode)
    return Sequences((x - mean).div_(std.clamp(min=1e-5)), fs.offsets, lengths)


def norm_statistics(fs: FeatureSet, train_idx: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The mean/std ``normalize`` applies: the training utterances' (global), every utterance's
    (corpus: test speakers included, the authors' leak), none (utterance: per-utterance CMVN)."""
    if mode == "utterance":
        return None
    return train_statistics(fs, torch.arange(len(fs)) if mode == "corpus" else train_idx)


def train_statistics(fs: FeatureSet, train_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coefficient mean and std over the real frames of the training utterances."""
    in_train = torch.zeros(len(fs), dtype=torch.bool)
    in_train[train_idx] = True
    x = fs.frames[in_train[_utterance_of_frame(fs.lengths)]]
    n = float(len(x))
    s1, s2 = x.sum(0, dtype=torch.float64), x.square().sum(0, dtype=torch.float64)
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


EVAL_FRAMES = 256 * 1000  # frames per evaluation batch at most: a long utterance gets a smaller batch


def sorted_batches(idx: torch.Tensor, lengths: torch.Tensor, batch_size: int = 256,
                   max_frames: int = EVAL_FRAMES) -> list[torch.Tensor]:
    """Deterministic batches for evaluation, by length; a batch is cut short where its padded
    size would pass ``max_frames`` (RAVDESS, at most 540 frames, never is)."""
    order = idx[torch.argsort(lengths[idx], stable=True)]
    sizes = lengths[order].tolist()
    batches, start = [], 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        while end - start > 1 and (end - start) * sizes[end - 1] > max_frames:
            end -= 1
        batches.append(order[start:end])
        start = end
    return batches


def gather(features: Sequences | torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, batch: torch.Tensor):
    """A batch padded to its own longest utterance."""
    if isinstance(features, Sequences):
        return features.batch(batch), lengths[batch], labels[batch]
    t = int(lengths[batch].max())
    return features[batch, :t], lengths[batch], labels[batch]
