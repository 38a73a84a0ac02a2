"""The tune stage's search space: the paper's five knobs, overridable from YAML or TOML.

A file maps knob -> {type, ...}; types are Ray Tune's own samplers, which OptunaSearch turns
into Optuna distributions:
    lr:           {type: loguniform, low: 1.0e-4, high: 1.0e-2}
    batch_size:   {type: choice, values: [16, 32, 64]}
    dropout:      {type: uniform, low: 0.0, high: 0.5}
    weight_decay: {type: loguniform, low: 1.0e-5, high: 1.0e-1}
    cycles:       {type: int, low: 1, high: 4}          # inclusive
A file may name only some knobs: the others keep these defaults. A plain value fixes a knob.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml
from ray import tune

from sertune.config import TUNED_KNOBS
from sertune.errors import ConfigError

DEFAULT_SPACE = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    "batch_size": {"type": "choice", "values": [16, 32, 64]},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
    "weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-1},
    "cycles": {"type": "int", "low": 1, "high": 4},
}

SAMPLERS = {
    "loguniform": lambda s: tune.loguniform(float(s["low"]), float(s["high"])),
    "uniform": lambda s: tune.uniform(float(s["low"]), float(s["high"])),
    "choice": lambda s: tune.choice(list(s["values"])),
    "int": lambda s: tune.randint(int(s["low"]), int(s["high"]) + 1),
}


def load_space(path: str | None) -> dict:
    """The space as plain data (defaults updated by the file), for recording and for Tune."""
    space = json.loads(json.dumps(DEFAULT_SPACE))
    if path is None:
        return space
    p = Path(path)
    try:
        text = p.read_text()
        user = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read search space ({str(e).splitlines()[0]})") from None
    if not isinstance(user, dict):
        raise ConfigError(f"{path}: a search space maps knob names to specs")
    unknown = sorted(set(user) - set(TUNED_KNOBS))
    if unknown:
        raise ConfigError(f"{path}: unknown knob(s) {', '.join(unknown)}; tunable: {', '.join(TUNED_KNOBS)}")
    space.update(user)
    to_tune(space)  # validate now, not inside a trial
    return space


def to_tune(space: dict) -> dict:
    out = {}
    for knob, spec in space.items():
        if not isinstance(spec, dict):
            out[knob] = spec  # fixed value
            continue
        kind = spec.get("type")
        if kind not in SAMPLERS:
            raise ConfigError(f"search space: {knob}: type {kind!r} is not one of {', '.join(SAMPLERS)}")
        try:
            out[knob] = SAMPLERS[kind](spec)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"search space: {knob}: bad spec {spec} ({e})") from None
    return out
