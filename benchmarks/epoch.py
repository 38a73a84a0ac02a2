"""Seconds per epoch: `sertune.train.train` against a plain PyTorch loop, same model and data.

    python benchmarks/epoch.py                                   # real corpus, 10 epochs, 1 thread
    python benchmarks/epoch.py --data synthetic --epochs 1      # smoke test

The plain loop is what a typical user writes: a Python list of (frames, label) tensors, shuffled
every epoch, cut into batch_size items, padded per batch with pad_sequence, fed to the same
AttentionLSTM (the same masks, so it computes the same function) with the same AdamW, the same
cosine warm restarts and the same best-validation-epoch model selection. sertune differs only in
how batches are made: whole-corpus tensors gathered by index, utterances bucketed by length.

Both use the same normalisation (train-speaker statistics), the same seed (so the same initial
weights) and torch.set_num_threads(--threads). Seconds per epoch are the median over epochs (the
first epoch carries one-off allocations) and include validation, as sertune's epoch_time_s does.
Target: sertune <= 0.5 x the plain loop on CPU at equal test UAR. The padding columns say why:
frames run through the LSTM that are padding, per real frame, in the training batches.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REAL_DATA, add_store_args, median, store_from_args, table  # noqa: E402

from sertune.training.batching import BucketBatches, train_statistics  # noqa: E402
from sertune.config import TrainConfig  # noqa: E402
from sertune.audio.labels import N_CLASSES  # noqa: E402
from sertune.training.metrics import confusion_matrix, uar  # noqa: E402
from sertune.training.model import AttentionLSTM  # noqa: E402
from sertune.training.splits import make_splits  # noqa: E402
from sertune.store.load import load_store  # noqa: E402
from sertune.training.loop import train  # noqa: E402


def plain_loop(fs, split, cfg: TrainConfig, device: torch.device) -> dict:
    """The naive loop. Returns per-epoch seconds, test UAR and padding counts."""
    if cfg.threads:  # 0 keeps torch's default, as in TrainConfig
        torch.set_num_threads(cfg.threads)
    mean, std = train_statistics(fs, torch.as_tensor(split.train))  # not timed; same numbers as sertune
    std = std.clamp(min=1e-5)

    padded = fs.features  # built once: the store keeps utterances packed

    def items(idx):  # per-utterance arrays, unpadded, normalised
        return [((padded[i, : fs.lengths[i]] - mean) / std, int(fs.labels[i])) for i in idx]

    train_set, val_set, test_set = items(split.train), items(split.val), items(split.test)
    torch.manual_seed(cfg.seed)  # before the model, as in sertune: the same initial weights
    model = AttentionLSTM(fs.frames.shape[1], cfg.hidden_size, cfg.num_layers, cfg.n_att, cfg.dropout,
                          N_CLASSES).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=max(1, cfg.epochs // cfg.cycles))
    rng = random.Random(cfg.seed)
    bs = cfg.batch_size

    def batch(chunk):
        x = pad_sequence([u for u, _ in chunk], batch_first=True)
        lengths = torch.tensor([len(u) for u, _ in chunk])
        y = torch.tensor([label for _, label in chunk])
        return x.to(device), lengths.to(device), y.to(device)

    @torch.no_grad()
    def evaluate(data):
        model.eval()
        cm = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.long)
        for i in range(0, len(data), bs):
            x, lengths, y = batch(data[i : i + bs])
            cm += confusion_matrix(y, model(x, lengths)[0].argmax(1), N_CLASSES)
        return uar(cm)

    times, padded, real = [], 0, 0
    best, best_state = -1.0, None
    n_batches = -(-len(train_set) // bs)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        rng.shuffle(train_set)
        for b in range(n_batches):
            x, lengths, y = batch(train_set[b * bs : (b + 1) * bs])
            padded, real = padded + x.shape[0] * x.shape[1] - int(lengths.sum()), real + int(lengths.sum())
            loss = nn.functional.cross_entropy(model(x, lengths)[0], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step(epoch + (b + 1) / n_batches)
            loss.item()  # a typical loop logs the loss; it also syncs a GPU, like sertune's
        val = evaluate(val_set)
        if val > best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        times.append(time.perf_counter() - t0)
    model.load_state_dict(best_state)
    return {"times": times, "uar": evaluate(test_set), "padded": padded, "real": real}


def sertune_run(fs, split, cfg: TrainConfig) -> dict:
    """sertune's own training; its batches are replayed afterwards (same generator, same seed)
    only to count padding, which train() does not report."""
    result = train(cfg, fs)
    gen, train_idx = torch.Generator().manual_seed(cfg.seed), torch.as_tensor(split.train)
    padded = real = 0
    for _ in range(cfg.epochs):
        for b in BucketBatches(train_idx, fs.lengths, cfg.batch_size, gen):
            lengths = fs.lengths[b]
            padded, real = padded + len(b) * int(lengths.max()) - int(lengths.sum()), real + int(lengths.sum())
    return {"times": [h["epoch_time_s"] for h in result.history], "uar": result.uar, "padded": padded, "real": real}


def warm_up(fs, cfg: TrainConfig, device: str) -> None:
    """One untimed step before anything is timed: torch's one-off kernel and allocator set-up
    would otherwise land on whichever loop happens to run first."""
    if cfg.threads:  # 0 keeps torch's default, as in TrainConfig
        torch.set_num_threads(cfg.threads)
    model = AttentionLSTM(fs.frames.shape[1], cfg.hidden_size, cfg.num_layers, cfg.n_att).to(device)
    x = fs.subset(torch.arange(cfg.batch_size)).features.to(device)
    model(x, fs.lengths[: cfg.batch_size].to(device))[0].sum().backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_args(ap, str(REAL_DATA))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, for both")
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto: cpu, then cuda too when present")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1; UAR and s/epoch are over all of them")
    ap.add_argument("--n-att", type=int, default=1)
    args = ap.parse_args()
    devices = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])) if args.device == "auto" else [args.device]

    with tempfile.TemporaryDirectory(prefix="sertune-bench-") as tmp:
        fs = load_store(store_from_args(args, Path(tmp)))
    base = TrainConfig(epochs=args.epochs, threads=args.threads, n_att=args.n_att)
    split = make_splits(fs.meta, base.split, base.folds, base.split_seed)[0]
    mean_len = float(fs.lengths[torch.as_tensor(split.train)].float().mean())

    rows, summary = [], []
    for device in devices:
        runs = {"plain": [], "sertune": [], "sertune bf16": []}
        warm_up(fs, base, device)
        for seed in range(args.seeds):
            cfg = base.replace(seed=seed, device=device)
            runs["plain"].append(plain_loop(fs, split, cfg, torch.device(device)))
            runs["sertune"].append(sertune_run(fs, split, cfg))
            # --precision bf16: the same run under bfloat16 autocast (fp32 master weights)
            runs["sertune bf16"].append(sertune_run(fs, split, cfg.replace(precision="bf16")))
        spe = {}
        for name, rs in runs.items():
            spe[name] = median([t for r in rs for t in r["times"]])
            pad = sum(r["padded"] for r in rs) / sum(r["real"] for r in rs)
            test_uar = sum(r["uar"] for r in rs) / len(rs)
            rows.append([f"{name} ({device})", spe[name], spe["plain"] / spe[name], f"{100 * pad:.1f}%", test_uar])
        summary.append(f"{device} {spe['sertune'] / spe['plain']:.2f} x, bf16 {spe['sertune bf16'] / spe['plain']:.2f} x")

    print(f"\n{len(fs)} utterances ({len(split.train)} train), mean train utterance {mean_len:.0f} frames; "
          f"{args.epochs} epoch(s) x {args.seeds} seed(s), batch {base.batch_size}, n_att {args.n_att}, "
          f"{args.threads} thread(s)")
    print(table(["loop", "s/epoch", "speed-up", "padding/real", "test UAR"], rows))
    print(f"summary: sertune s/epoch vs the plain loop: {', '.join(summary)} (target <= 0.5 on cpu, equal UAR)")


if __name__ == "__main__":
    main()
