"""New audio -> emotion probabilities, featurised and normalised exactly as in training.

Decoding and MFCC are the store's own code (``MfccExtractor`` with the feature parameters the
model recorded), normalisation is ``batching.normalize`` with the fold's training statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sertune.audio.features import MfccExtractor
from sertune.errors import CorpusError
from sertune.insight.models import FoldModel
from sertune.store.load import FeatureSet
from sertune.training.batching import normalize

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def audio_files(args: list[str]) -> tuple[list[str], list[str]]:
    """Files named, and audio files inside folders named (sorted); plus one error line per
    argument that yields nothing."""
    files, errors = [], []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
            files += found
            if not found:
                errors.append(f"{a}: no .wav, .flac or .ogg files in this folder")
        elif p.is_file():
            files.append(str(p))
        else:
            errors.append(f"{a}: no such file or folder")
    return files, errors


def featurise(paths: list[str], extractor: MfccExtractor) -> tuple[list[str], list[np.ndarray], list[str]]:
    """(paths decoded, their raw MFCC, one error line per file that could not be decoded)."""
    ok, mfccs, errors = [], [], []
    for p in paths:
        try:
            mfcc, _ = extractor(p)
        except CorpusError as e:
            errors.append(e.message)
            continue
        ok.append(p)
        mfccs.append(mfcc)
    return ok, mfccs, errors


def unlabelled(mfccs: list[np.ndarray]) -> FeatureSet:
    """Raw MFCC of files, as the store's loader holds them (packed, unlabelled)."""
    zeros = torch.zeros(len(mfccs), dtype=torch.int64)
    return FeatureSet.of([torch.from_numpy(m) for m in mfccs], zeros, zeros, pd.DataFrame(), {})


def model_input(model: FoldModel, fs: FeatureSet) -> torch.Tensor:
    """The fold's normalisation (global statistics of its training speakers, or per-utterance
    CMVN), padded: the model's (N, T_max, D) input."""
    return normalize(fs, torch.arange(0), model.config.norm, model.norm_stats).padded()


@torch.no_grad()
def logits(model: FoldModel, fs: FeatureSet) -> torch.Tensor:
    out, _ = model.net(model_input(model, fs), fs.lengths)
    return out


@dataclass
class Predictions:
    files: list[str]
    probs: np.ndarray  # (files, classes), averaged over the models given
    errors: list[str]
    classes: tuple[str, ...]  # the models' outputs, in order

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.probs, columns=list(self.classes))
        df.insert(0, "predicted", [self.classes[i] for i in self.probs.argmax(1)] if len(self.files) else [])
        df.insert(0, "file", self.files)
        return df


def predict(models: list[FoldModel], args: list[str]) -> Predictions:
    """Probabilities of every decodable file, averaged over ``models`` (an ensemble of one or more)."""
    files, errors = audio_files(args)
    files, mfccs, bad = featurise(files, MfccExtractor(models[0].features))
    errors += bad
    if not files:
        return Predictions([], np.zeros((0, len(models[0].classes))), errors, models[0].classes)
    fs = unlabelled(mfccs)
    probs = torch.stack([torch.softmax(logits(m, fs), dim=1) for m in models]).mean(0)
    return Predictions(files, probs.numpy(), errors, models[0].classes)
