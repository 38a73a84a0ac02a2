"""The training configuration: the paper's five tuned knobs plus model, protocol and runtime."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from sertune.errors import ConfigError

TUNED_KNOBS = ("lr", "batch_size", "dropout", "weight_decay", "cycles")


@dataclass(frozen=True)
class TrainConfig:
    # model
    n_att: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    # the five knobs `sertune tune` searches
    lr: float = 3e-3
    batch_size: int = 32
    dropout: float = 0.2
    weight_decay: float = 1e-3
    cycles: int = 1  # cosine-annealing cycles (warm restarts) in the epoch budget
    # budget and protocol
    epochs: int = 60
    seed: int = 0
    split: str = "speaker"  # speaker | random
    folds: int = 0  # > 1: actor k-fold cross-validation, results are the mean over folds
    split_seed: int = 0  # for the random split only
    norm: str = "global"  # global: train-speaker mean/std per coefficient; utterance: per-utterance CMVN
    # runtime: not part of the experiment's identity
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    precision: str = "fp32"  # bf16: autocast (AVX512-BF16/AMX CPUs, recent GPUs), ~2x faster LSTM steps

    def __post_init__(self):
        checks = [
            (self.n_att >= 1, "n_att must be >= 1"),
            (self.hidden_size >= 1 and self.num_layers >= 1, "hidden_size and num_layers must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (1 <= self.cycles <= max(1, self.epochs), "cycles must be between 1 and epochs"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.folds == 0 or self.folds >= 3, "folds must be 0 (one fixed split) or >= 3"),
            (self.split in ("speaker", "random"), f"split {self.split!r} is not speaker or random"),
            (self.norm in ("global", "utterance"), f"norm {self.norm!r} is not global or utterance"),
            (self.precision in ("fp32", "bf16"), f"precision {self.precision!r} is not fp32 or bf16"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(problem)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        casts = {"int": int, "float": float, "str": str}
        return cls(**{k: casts[known[k]](v) if known[k] in casts else v for k, v in d.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)
