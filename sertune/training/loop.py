"""One training run, without Ray: `train(config, features)` -> TrainResult.

Per epoch every fold trains once and is validated; each fold keeps its best-validation
weights; only at the end are those weights scored on the test speakers. With --folds K all
folds advance in lockstep, so a scheduler sees one validation UAR per epoch either way.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sertune.config import TrainConfig
from sertune.errors import ConfigError, TrialError
from sertune.store.load import FeatureSet
from sertune.training.batching import BucketBatches, gather, norm_statistics, normalize, sorted_batches
from sertune.training.metrics import confusion_matrix, per_class_recall, uar
from sertune.training.model import AttentionLSTM
from sertune.training.schedule import cosine_restarts
from sertune.training.splits import Split, make_splits


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name}: not a torch device (auto, cpu, cuda, cuda:1 ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: this torch sees no CUDA device; use --device cpu or auto")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 needs a bfloat16 LSTM kernel: oneDNN has one only on CPUs with AVX512-BF16/AMX.
    Found out on a tiny LSTM now, rather than as a kernel error in the first batch."""
    if precision != "bf16":
        return
    lstm = nn.LSTM(2, 2, batch_first=True).to(device)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 2, device=device))
    except RuntimeError:
        raise ConfigError(f"--precision bf16: no bfloat16 LSTM kernel on this {device.type} "
                          "(CPUs need AVX512-BF16 or AMX); use --precision fp32") from None


def check_finite(loss: float, epoch: int, cfg: TrainConfig) -> None:
    """A nan or inf loss never recovers: stop rather than report chance-level UAR as a result."""
    if not math.isfinite(loss):
        raise TrialError(f"epoch {epoch}: the training loss is {loss} (not finite); likely a learning rate "
                         f"too high (lr {cfg.lr:g}) or bad features in the store (NaN or inf values)")


class FoldRun:
    """Model, optimiser and schedule for one split, and the best weights seen so far."""

    def __init__(self, cfg: TrainConfig, split: Split, x: torch.Tensor, fs: FeatureSet, device: torch.device,
                 norm_stats: tuple[torch.Tensor, torch.Tensor] | None, seed: int):
        self.cfg, self.split, self.device = cfg, split, device
        self.norm_stats = norm_stats  # kept for the checkpoint: a model needs its normalisation
        self.x, self.lengths, self.labels = x, fs.lengths.to(device), fs.labels.to(device)
        self.cpu_lengths = fs.lengths
        self.n_classes = len(fs.classes)
        torch.manual_seed(seed)  # this fold's initialisation; its shuffling has a generator of its own
        self.gen = torch.Generator().manual_seed(seed)
        self.model = AttentionLSTM(x.shape[2], cfg.hidden_size, cfg.num_layers, cfg.n_att, cfg.dropout, self.n_classes,
                                   context_norm=cfg.context_norm, init=cfg.init,
                                   attention_seed=attention_seed(seed)).to(device)
        self.opt = make_optimizer(cfg, self.model)
        self.sched = make_schedule(cfg, self.opt, len(self.batches()))
        self.best_uar, self.best_epoch, self.best_state = -1.0, 0, None

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def batches(self) -> BucketBatches:
        return BucketBatches(torch.as_tensor(self.split.train), self.cpu_lengths, self.cfg.batch_size, self.gen)

    def train_epoch(self) -> float:
        self.model.train()
        total, n = 0.0, 0
        for batch in self.batches():
            xb, lb, yb = gather(self.x, self.lengths, self.labels, batch.to(self.device))
            with self.autocast():
                logits, _ = self.model(xb, lb)
            loss = nn.functional.cross_entropy(logits.float(), yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.cfg.restart_epochs == 0:
                self.sched.step()
            total, n = total + loss.item() * len(batch), n + len(batch)
        if self.cfg.restart_epochs:
            self.sched.step()  # the authors' CosineAnnealingWarmRestarts steps once per epoch
        return total / max(n, 1)

    @torch.no_grad()
    def confusion(self, idx) -> torch.Tensor:
        self.model.eval()
        cm = torch.zeros(self.n_classes, self.n_classes, dtype=torch.long)
        for batch in sorted_batches(torch.as_tensor(idx), self.cpu_lengths):
            xb, lb, yb = gather(self.x, self.lengths, self.labels, batch.to(self.device))
            with self.autocast():
                logits, _ = self.model(xb, lb)
            cm += confusion_matrix(yb, logits.argmax(1), self.n_classes)
        return cm

    def validate(self, epoch: int) -> float:
        """Validation UAR; remember the weights if it is the best so far (ties keep the earlier)."""
        score = uar(self.confusion(self.split.val))
        if score > self.best_uar:
            self.best_uar, self.best_epoch = score, epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        return score

    def test(self) -> torch.Tensor:
        """The best weights' logits on the test utterances (``split.test`` order): the confusion
        matrix and the per-utterance predictions both come from these, so they always agree."""
        self.model.load_state_dict(self.best_state)
        return self.test_logits()

    @torch.no_grad()
    def test_logits(self) -> torch.Tensor:
        """The current model's logits on the test utterances, in ``split.test`` order (float32, CPU):
        kept in the checkpoint so a saved model can be checked against what training saw."""
        self.model.eval()
        idx = torch.as_tensor(self.split.test)
        out = torch.zeros(len(idx), self.n_classes)
        for batch in sorted_batches(torch.arange(len(idx)), self.cpu_lengths[idx]):
            xb, lb, _ = gather(self.x, self.lengths, self.labels, idx[batch].to(self.device))
            with self.autocast():
                logits, _ = self.model(xb, lb)
            out[batch] = logits.float().cpu()
        return out

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "best": (self.best_uar, self.best_epoch, self.best_state), "gen": self.gen.get_state()}

    def load_state_dict(self, s: dict) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        self.sched.load_state_dict(s["sched"])
        self.best_uar, self.best_epoch, self.best_state = s["best"]
        self.gen.set_state(s["gen"])


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), or Adam whose weight decay is L2 in the gradient, as the
    authors' code uses it."""
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, batches_per_epoch: int):
    """Per batch: ``cycles`` whole cosine cycles in the budget. With ``restart_epochs``: the
    authors' CosineAnnealingWarmRestarts(T_0 = restart_epochs, T_mult = 1), stepped per epoch.
    Both bottom out at ``eta_min_ratio`` x lr."""
    floor = cfg.eta_min_ratio
    if cfg.restart_epochs:
        period = cfg.restart_epochs
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: floor + (1 - floor) * cosine_restarts(epoch % period, period, 1))
    steps = cfg.epochs * batches_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: floor + (1 - floor) * cosine_restarts(step, steps, cfg.cycles))


def fold_seed(seed: int, fold: int) -> int:
    """Each fold's randomness from the run's seed and the fold index: ten seeds are ten
    independent runs, and no fold shares its stream with another."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1, np.uint64)[0] >> 1)


def run_fold_seed(cfg: TrainConfig, fold: int) -> int:
    """fold_seed, unless the run asks for the authors' fixed per-fold seed (then every fold, and
    every run of any seed, starts from the same draws: repeated runs differ only by nondeterminism)."""
    return cfg.fixed_fold_seed if cfg.fixed_fold_seed >= 0 else fold_seed(cfg.seed, fold)


def attention_seed(seed: int) -> int:
    """The attention vectors' own stream, from the fold's seed: runs that differ only in N_att
    share every other draw (weights, batch order, dropout masks)."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class TrainResult:
    uar: float  # test UAR at the best-validation epoch; K folds: pooled over all out-of-fold predictions
    val_uar: float
    best_epoch: int
    epochs: int
    recall: list[float]  # per class, from the test confusion matrix summed over folds
    confusion: list[list[int]]
    classes: tuple[str, ...]  # the label set: the order of recall and of the confusion matrix's rows
    protocol: dict
    history: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    checkpoint: dict = field(default_factory=dict, repr=False)  # best weights and normalisation per fold
    fold_uars: list[float] = field(default_factory=list)  # each fold's own test UAR
    predictions: dict = field(default_factory=dict, repr=False)  # per test utterance (Training.predictions)

    def recall_by_emotion(self) -> dict[str, float]:
        return dict(zip(self.classes, self.recall))


class Training:
    """All folds of one configuration, advanced one epoch at a time."""

    def __init__(self, cfg: TrainConfig, fs: FeatureSet):
        self.cfg, self._fs = cfg, fs
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = pick_device(cfg.device)
        check_precision(cfg.precision, device)
        self.splits = make_splits(fs.meta, cfg.split, cfg.folds, cfg.split_seed, cfg.actor_folds)
        self.folds = []
        for i, split in enumerate(self.splits):
            train_idx = torch.as_tensor(split.train)
            stats = norm_statistics(fs, train_idx, cfg.norm)
            x = normalize(fs, train_idx, cfg.norm, stats).to(device)
            self.folds.append(FoldRun(cfg, split, x, fs, device, stats, run_fold_seed(cfg, i)))
        torch.manual_seed(run_fold_seed(cfg, len(self.splits)))  # dropout's stream, shared by the folds in lockstep
        self._test_cms: list[torch.Tensor | None] = [None] * len(self.folds)  # selected_on test: at best validation
        self.epoch, self.history, self.started = 0, [], time.perf_counter()

    def step(self) -> dict:
        """Train every fold one epoch and validate; the metrics a scheduler sees."""
        t0 = time.perf_counter()
        losses = [f.train_epoch() for f in self.folds]
        check_finite(sum(losses) / len(losses), self.epoch + 1, self.cfg)
        vals = [f.validate(self.epoch + 1) for f in self.folds]
        self.epoch += 1
        metrics = {
            "epoch": self.epoch,
            "train_loss": sum(losses) / len(losses),
            "val_uar": sum(vals) / len(vals),
            "best_val_uar": sum(f.best_uar for f in self.folds) / len(self.folds),
            "epoch_time_s": time.perf_counter() - t0,
        }
        if self.cfg.selected_on == "test":
            metrics["test_uar_at_best_val"] = self._test_at_best_val()
        self.history.append(metrics)
        return metrics

    def _test_at_best_val(self) -> float:
        """The pooled test UAR the run would end with if it stopped now (each fold at its best
        validation epoch): the objective of the authors' Optuna search, a leak measured on purpose.
        A fold's test set is evaluated only when its validation UAR improved."""
        for i, f in enumerate(self.folds):
            if f.best_epoch == self.epoch or self._test_cms[i] is None:
                self._test_cms[i] = f.confusion(f.split.test)
        return uar(sum(self._test_cms))

    def finish(self) -> TrainResult:
        logits = [f.test() for f in self.folds]
        k = len(self._fs.classes)
        cms = [confusion_matrix(f.labels[f.split.test].cpu(), z.argmax(1), k) for f, z in zip(self.folds, logits)]
        total = sum(cms)  # K folds test each utterance once: one confusion matrix over all of them
        return TrainResult(
            uar=uar(total),
            fold_uars=[uar(cm) for cm in cms],
            val_uar=sum(f.best_uar for f in self.folds) / len(self.folds),
            best_epoch=round(sum(f.best_epoch for f in self.folds) / len(self.folds)),
            epochs=self.epoch,
            recall=[float(r) for r in per_class_recall(total)],
            confusion=total.tolist(),
            classes=self._fs.classes,
            protocol={"split": self.cfg.split, "folds": [s.describe() for s in self.splits], "norm": self.cfg.norm,
                      "uar": "pooled over folds" if len(cms) > 1 else "one test set"},
            history=self.history,
            wall_time_s=time.perf_counter() - self.started,
            checkpoint=self.checkpoint(logits),
            predictions=self.predictions(logits),
        )

    def predictions(self, logits: list[torch.Tensor]) -> dict:
        """Each test utterance once (out of fold with several folds): who, which fold, the true
        class, and the class probabilities (sertune/predictions.py makes the table)."""
        meta, idx = self._fs.meta, [np.asarray(f.split.test) for f in self.folds]
        every = np.concatenate(idx)
        return {"utt_id": meta["utt_id"].to_numpy()[every].tolist(), "actor": meta["actor"].to_numpy()[every],
                "fold": np.concatenate([np.full(len(i), k) for k, i in enumerate(idx)]),
                "label_id": self._fs.labels.numpy()[every], "classes": self._fs.classes,
                "probs": torch.softmax(torch.cat(logits), dim=1).numpy()}

    def checkpoint(self, logits: list[torch.Tensor]) -> dict:
        """What it takes to use the models later: per fold, the best weights and, for global
        normalisation, the training speakers' statistics."""
        folds = []
        for f, test_logits in zip(self.folds, logits):
            # Test utterances and their logits (after test() loaded the best weights): what a
            # saved model must reproduce (sertune predict).
            test_ids = self._fs.meta["utt_id"].iloc[list(f.split.test)].tolist()
            folds.append({"weights": f.best_state, "best_epoch": f.best_epoch, "split": f.split.describe(),
                          "norm_mean_std": f.norm_stats, "test_utt_ids": test_ids, "test_logits": test_logits})
        return {"config": self.cfg.to_dict(), "store_hash": self._fs.store_hash,
                "features": self._fs.manifest["features"], "classes": list(self._fs.classes),
                "corpus": self._fs.corpus, "folds": folds}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "history": self.history, "folds": [f.state_dict() for f in self.folds],
                "rng": torch.get_rng_state(), "test_cms": self._test_cms,
                "elapsed_s": time.perf_counter() - self.started}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.history = s["epoch"], s["history"]
        self.started = time.perf_counter() - s.get("elapsed_s", 0.0)  # wall time counts every attempt
        for f, fs in zip(self.folds, s["folds"]):
            f.load_state_dict(fs)
        torch.set_rng_state(s["rng"])
        self._test_cms = s.get("test_cms", self._test_cms)


def train(cfg: TrainConfig, fs: FeatureSet, on_epoch=None, state: dict | None = None) -> TrainResult:
    """Run to ``cfg.epochs``; ``on_epoch(metrics, training)`` after each epoch (report, checkpoint, print)."""
    run = Training(cfg, fs)
    if state is not None:
        run.load_state_dict(state)
    while run.epoch < cfg.epochs:
        metrics = run.step()
        if on_epoch is not None:
            on_epoch(metrics, run)
    return run.finish()
