"""What the attention vectors do: per utterance the MFCC frames, the attention weights alpha_t
and the vector that wins the max at each frame; over a test set, how the attention mass is
shared between the vectors, per emotion. No pyplot (figures are drawn on Agg canvases)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sertune.insight.models import FoldModel
from sertune.insight.predict import model_input
from sertune.report.figures import png_bytes
from sertune.store.load import FeatureSet


@dataclass
class UtteranceAttention:
    name: str
    label: int | None  # true emotion index where known (store utterances), else None
    predicted: int
    mfcc: np.ndarray  # (T, D) raw MFCC, real frames only
    alpha: np.ndarray  # (T,) attention weights over real frames; sums to 1
    winner: np.ndarray  # (T,) index of the vector winning the max at each frame


@torch.no_grad()
def attention(model: FoldModel, fs: FeatureSet, names: list[str], labels: list[int | None]) -> list[UtteranceAttention]:
    logits, alpha, winner = model.net.attention_map(model_input(model, fs), fs.lengths)
    out, raw = [], fs.features  # padded once, not per utterance
    for i, n in enumerate(fs.lengths.tolist()):
        out.append(UtteranceAttention(names[i], labels[i], int(logits[i].argmax()), raw[i, :n].numpy(),
                                      alpha[i, :n].numpy(), winner[i, :n].numpy()))
    return out


def win_shares(utts: list[UtteranceAttention], n_att: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_att, classes) share of the attention mass each vector carries, averaged over the
    utterances of each class (each column sums to 1), and the count of utterances per class."""
    shares = np.zeros((n_att, n_classes))
    counts = np.zeros(n_classes, dtype=int)
    for u in utts:
        shares[:, u.label] += np.bincount(u.winner, weights=u.alpha, minlength=n_att)
        counts[u.label] += 1
    return shares / np.maximum(counts, 1), counts


def utterance_png(u: UtteranceAttention, n_att: int, hop_ms: float, classes: tuple[str, ...]) -> bytes:
    t = np.arange(len(u.alpha)) * hop_ms / 1000
    rows = 3 if n_att > 1 else 2
    fig = Figure(figsize=(7.5, 2.2 + 1.3 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1][:rows]})
    ax = axes[0]
    # Per-coefficient z-scores for display: raw c0 (log energy) spans far more than the rest.
    z = (u.mfcc - u.mfcc.mean(0)) / np.maximum(u.mfcc.std(0), 1e-6)
    ax.imshow(z.T, aspect="auto", origin="lower", cmap="magma", interpolation="nearest", vmin=-2.5, vmax=2.5,
              extent=(t[0], t[-1] + hop_ms / 1000, -0.5, u.mfcc.shape[1] - 0.5))
    ax.set_ylabel("MFCC coef.\n(z per coef.)")
    truth = f"true {classes[u.label]}, " if u.label is not None else ""
    ax.set_title(f"{u.name}: {truth}predicted {classes[u.predicted]}", fontsize=10)
    ax = axes[1]
    ax.plot(t, u.alpha, color="C0", lw=1.2)
    ax.fill_between(t, u.alpha, color="C0", alpha=0.25)
    ax.axhline(1 / len(u.alpha), color="0.5", lw=0.8, ls="--", label="uniform 1/T")
    ax.set_ylabel(r"$\alpha_t$")
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    if n_att > 1:
        ax = axes[2]
        sc = ax.scatter(t, u.winner, c=u.winner, cmap="tab20" if n_att <= 20 else "viridis", vmin=0,
                        vmax=max(n_att - 1, 1), s=4 + 60 * u.alpha / u.alpha.max(), lw=0)
        ax.set_ylim(-0.5, n_att - 0.5)
        ax.set_ylabel("winning\nvector")
        ax.set_yticks(range(n_att) if n_att <= 16 else range(0, n_att, max(1, n_att // 8)))
        ax.tick_params(axis="y", labelsize=7)
        del sc
    axes[-1].set_xlabel("time (s)" + ("; dot size: α_t" if n_att > 1 else ""))
    fig.tight_layout()
    return png_bytes(fig)


def shares_png(shares: np.ndarray, counts: np.ndarray, title: str, classes: tuple[str, ...]) -> bytes:
    n_att = shares.shape[0]
    fig = Figure(figsize=(8.5, 1.6 + 0.32 * max(n_att, 4)))
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
    im = ax.imshow(shares, aspect="auto", cmap="viridis", vmin=0, vmax=max(float(shares.max()), 1e-9))
    ax.set_xticks(range(len(classes)), [f"{e}\n(n={c})" for e, c in zip(classes, counts)], fontsize=7)
    ax.set_yticks(range(n_att), [f"u{i}" for i in range(n_att)], fontsize=7)
    ax.set_ylabel("attention vector")
    if n_att * len(classes) <= 16 * 8:
        for i in range(n_att):
            for j in range(len(classes)):
                ax.text(j, i, f"{shares[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if shares[i, j] < 0.6 * shares.max() else "black")
    ax.set_title("share of attention mass per class (columns sum to 1)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    overall = (shares * counts).sum(1) / max(counts.sum(), 1)
    bx.barh(range(n_att), overall, color="C0")
    bx.set_xlabel("share, all utterances", fontsize=8)
    bx.tick_params(axis="x", labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)
