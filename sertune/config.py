"""The configurations, with their defaults and rules: features (audio -> store) and training.

Light on purpose (no librosa, torch or Ray): the command line reads its defaults from here.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

from sertune.errors import ConfigError

# What a search space may name: the paper's five knobs, plus the warm-restart period in epochs
# that the authors' recipe searches instead of the cycle count.
TUNED_KNOBS = ("lr", "batch_size", "dropout", "weight_decay", "cycles", "restart_epochs")
# Fields that say where and how fast a run goes, not what it computes: two runs that differ only
# here are the same experiment. Everything else in TrainConfig (precision included) is identity.
RUNTIME_FIELDS = ("device", "threads")
# Caps that refuse a typo before it allocates: LSTM weights grow with hidden_size squared
# (100 000 would take 160 GB), and the paper's largest model is hidden 64, N_att 64, one layer.
MAX_HIDDEN_SIZE, MAX_LAYERS, MAX_N_ATT = 4096, 8, 1024
# Feature normalisation. global: per-coefficient mean/std of the training speakers' frames;
# utterance: per-utterance CMVN; corpus: mean/std of every utterance, test speakers included --
# the authors' leak, kept only so that what it inflates can be measured.
NORMS = ("global", "utterance", "corpus")
SELECTED_ON = ("validation", "test")  # what a configuration is chosen on; test is the authors' leak


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000  # every file is resampled to this before analysis
    n_mfcc: int = 34
    n_fft: int = 512
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> "FeatureConfig":
        for name in ("win_ms", "hop_ms", "fmin", "fmax"):  # nan or inf would fail later as a traceback
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"feature parameters: {name} must be a finite number (got {getattr(self, name)})")
        checks = [
            (self.sample_rate > 0 and self.n_fft > 0, "sample rate and n_fft must be positive"),
            (self.hop_length >= 1, f"hop {self.hop_ms} ms is under one sample"),
            (1 <= self.win_length <= self.n_fft, f"window {self.win_ms} ms ({self.win_length} samples) must be 1..n_fft ({self.n_fft})"),
            (0 <= self.fmin < self.fmax, f"need 0 <= fmin < fmax (got {self.fmin}, {self.fmax})"),
            (self.fmax <= self.sample_rate / 2, f"fmax {self.fmax} Hz is above the Nyquist frequency {self.sample_rate / 2:g} Hz"),
            (1 <= self.n_mfcc <= self.n_mels, f"n_mfcc {self.n_mfcc} must be between 1 and n_mels {self.n_mels}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(f"feature parameters: {problem}")
        return self


def _as_bool(v) -> bool:
    if isinstance(v, bool):
        return v
    if v in (0, 1, "true", "false", "True", "False"):
        return v in (1, "true", "True")
    raise ConfigError(f"{v!r} is not true or false")


@dataclass(frozen=True)
class TrainConfig:
    # model
    n_att: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    context_norm: bool = False  # BatchNorm1d on the context vector, before dropout (the authors' LSTM-SA)
    init: str = "default"  # default: torch's; xavier: Xavier-normal input, orthogonal recurrent, forget bias 1
    # the five knobs `sertune tune` searches
    lr: float = 3e-3
    batch_size: int = 32
    dropout: float = 0.2
    weight_decay: float = 1e-3
    cycles: int = 1  # cosine-annealing cycles (warm restarts) in the epoch budget, stepped per batch
    # optimiser and schedule variants
    optimizer: str = "adamw"  # adamw: decoupled weight decay; adam: Adam with L2 (weight decay in the gradient)
    restart_epochs: int = 0  # > 0: warm restarts every this many epochs, stepped per epoch (replaces cycles)
    eta_min_ratio: float = 0.0  # the schedule's floor as a fraction of lr
    # budget and protocol
    epochs: int = 60
    seed: int = 0
    split: str = "speaker"  # speaker | random
    folds: int = 0  # >= 3: K-fold cross-validation (actor groups, or stratified utterances with split random)
    actor_folds: str = ""  # fixed actor folds "test/val;test/val;..." (e.g. "2,5,14,15,16/3,6;..."); see splits.py
    split_seed: int = 0  # for the random split only
    norm: str = "global"  # one of NORMS
    precision: str = "fp32"  # bf16: autocast (AVX512-BF16/AMX CPUs, recent GPUs), ~2x faster LSTM steps
    # The authors' two leaks (sertune/leaks.py), kept only so that what they are worth can be measured:
    selected_on: str = "validation"  # test: the configuration is chosen on pooled test UAR (their Optuna objective)
    fixed_fold_seed: int = -1  # >= 0: every fold seeded with this, whatever the run's seed (their re-seeding)
    # runtime (RUNTIME_FIELDS): not part of the experiment's identity
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 keeps torch's default

    def __post_init__(self):
        checks = [
            (1 <= self.n_att <= MAX_N_ATT, f"n_att must be between 1 and {MAX_N_ATT}"),
            (1 <= self.hidden_size <= MAX_HIDDEN_SIZE, f"hidden_size must be between 1 and {MAX_HIDDEN_SIZE}"),
            (1 <= self.num_layers <= MAX_LAYERS, f"num_layers must be between 1 and {MAX_LAYERS}"),
            (math.isfinite(self.lr) and self.lr > 0, "lr must be a finite number > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),  # also refuses nan
            (math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay must be a finite number >= 0"),
            (1 <= self.cycles <= max(1, self.epochs), f"cycles must be between 1 and epochs ({self.epochs})"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.seed >= 0 and self.split_seed >= 0 and self.threads >= 0, "seed, split_seed and threads must be >= 0"),
            (self.folds == 0 or self.folds >= 3, "folds must be 0 (one fixed split) or >= 3"),
            (self.split in ("speaker", "random"), f"split {self.split!r} is not speaker or random"),
            (self.norm in NORMS, f"norm {self.norm!r} is not one of {', '.join(NORMS)}"),
            (self.precision in ("fp32", "bf16"), f"precision {self.precision!r} is not fp32 or bf16"),
            (self.selected_on in SELECTED_ON, f"selected_on {self.selected_on!r} is not validation or test"),
            (self.fixed_fold_seed >= -1, "fixed_fold_seed must be -1 (off) or a seed >= 0"),
            (self.optimizer in ("adamw", "adam"), f"optimizer {self.optimizer!r} is not adamw or adam"),
            (self.init in ("default", "xavier"), f"init {self.init!r} is not default or xavier"),
            (self.restart_epochs >= 0, "restart_epochs must be >= 0"),
            (self.restart_epochs == 0 or self.cycles == 1,
             "cycles and restart_epochs exclude each other: give the period in epochs or the cycle count"),
            (0 <= self.eta_min_ratio < 1, "eta_min_ratio must be in [0, 1)"),
            (not self.actor_folds or (self.split == "speaker" and self.folds == 0),
             "actor_folds are speaker folds of their own: not with split random or folds K"),
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
        return cls(**{k: _cast(k, known[k], v) for k, v in d.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)

    def identity(self, exclude: tuple[str, ...] = ()) -> dict:
        """The fields that make two runs the same experiment, less ``exclude`` (what a stage
        searches or sweeps)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS and k not in exclude}


def _cast(name: str, kind: str, value):
    """A configuration file's value as the field's type, refusing what a cast would change:
    16.7 is not a batch size, true is not a number, "abc" is not a learning rate. Numeric
    strings pass: YAML reads 1e-3 as a string."""
    if kind == "bool":
        return _as_bool(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name}: {value!r} is not a string")
        return value
    if kind not in ("int", "float"):
        return value
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or isinstance(number, bool) or not isinstance(number, numbers.Real):
        raise ConfigError(f"{name}: {value!r} is not a number")
    if kind == "float":
        return float(number)
    if isinstance(number, numbers.Integral):
        return int(number)
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{name}: {value!r} is not a whole number")
    return int(number)
