"""What an experiment is: the settings of the two Ray stages, their defaults, and the one rule
for "the same experiment" that both tune's restore check and sweep's mixing check apply.

Light on purpose (no Ray): the command line reads its defaults from these dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

DEFAULT_EXPERIMENT_DIR = "sertune-experiment"  # or $SERTUNE_EXPERIMENT_DIR
DEFAULT_N_ATT = (1, 2, 4, 8, 16, 32, 64)
CHECKPOINT_EVERY = 5  # epochs between trial checkpoints (and always at the last epoch)
# Settings that say how a stage runs, not what it computes; they may change between reruns.
RUNTIME_SETTINGS = ("cpus_per_trial", "gpus_per_trial", "max_failures", "max_concurrent", "checkpoint_every")


@dataclass(frozen=True)
class TrialResources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractional: 0.25 packs four trials on a GPU
    max_failures: int = 2  # retries of a failed trial from its last checkpoint
    checkpoint_every: int = CHECKPOINT_EVERY


@dataclass(frozen=True)
class TuneSettings(TrialResources):
    num_samples: int = 20
    max_concurrent: int = 0  # 0: as many as the cluster fits
    grace_period: int = 10
    reduction_factor: int = 3
    search_seed: int = 0


@dataclass(frozen=True)
class SweepSettings(TrialResources):
    n_att: tuple[int, ...] = DEFAULT_N_ATT
    seeds: int = 10
    max_failures: int = 3

    def pairs(self) -> list[tuple[int, int]]:
        """Seed by seed: a sweep stopped part-way leaves every N_att with about as many seeds."""
        return [(a, seed) for seed in range(self.seeds) for a in self.n_att]


def default(settings: type, name: str):
    """A field's default, for the command line's options."""
    return {f.name: f.default for f in fields(settings)}[name]


def identity(settings) -> dict:
    """The settings that define an experiment (everything but resources and retries)."""
    return {k: v for k, v in asdict(settings).items() if k not in RUNTIME_SETTINGS}


def differences(old: dict, new: dict) -> list[str]:
    """Dotted names of the entries in which two experiment descriptions differ."""
    a, b = _flatten(_plain(old)), _flatten(_plain(new))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d))  # tuples and lists compare alike, as they do once stored


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out
