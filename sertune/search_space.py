"""The tune stage's search space: the paper's five knobs, overridable from YAML or TOML.

A file maps knob -> {type, ...}; types are Ray Tune's own samplers, which OptunaSearch turns
into Optuna distributions:
    lr:           {type: loguniform, low: 1.0e-4, high: 1.0e-2}
    batch_size:   {type: choice, values: [16, 32, 64]}
    dropout:      {type: uniform, low: 0.0, high: 0.5}
    weight_decay: {type: loguniform, low: 1.0e-5, high: 1.0e-1}
    cycles:       {type: int, low: 1, high: 4}          # inclusive
A file may name only some knobs: the others keep these defaults (cycles' high end cut to the
epoch budget). A plain value fixes a knob. Every value a trial can get is checked against
TrainConfig's rules up front: a bad space is refused before Ray starts or anything is written.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml
from ray import tune

from sertune.config import TUNED_KNOBS, TrainConfig
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
SPEC_KEYS = {"loguniform": {"low", "high"}, "uniform": {"low", "high"}, "int": {"low", "high"}, "choice": {"values"}}


def load_space(path: str | None, base: TrainConfig) -> dict:
    """The space as plain data (defaults updated by the file), for recording and for Tune, checked
    against TrainConfig's rules with ``base`` (everything not tuned) before anything runs."""
    space = default_space(base)
    if path is not None:
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
    source = path or "default search space"
    return {knob: checked_spec(knob, spec, base, source) for knob, spec in space.items()}


def default_space(base: TrainConfig) -> dict:
    """DEFAULT_SPACE, with the cycles range cut to what fits in the epoch budget (--epochs 2)."""
    space = json.loads(json.dumps(DEFAULT_SPACE))
    space["cycles"]["high"] = max(space["cycles"]["low"], min(space["cycles"]["high"], base.epochs))
    return space


def checked_spec(knob: str, spec, base: TrainConfig, source: str):
    """``spec`` with its values as TrainConfig's types, or a ConfigError naming the knob: every
    value a trial can get (both ends of a range, every choice) must make a valid TrainConfig,
    so no trial fails on its configuration after Ray has started."""
    where = f"{source}: {knob}"
    if not isinstance(spec, dict):
        return _value(knob, spec, base, source, names_knob=False)
    kind = spec.get("type")
    if kind not in SAMPLERS:
        raise ConfigError(f"{where}: type {kind!r} is not one of {', '.join(SAMPLERS)}")
    keys = set(spec) - {"type"}
    if keys != SPEC_KEYS[kind]:
        raise ConfigError(f"{where}: a {kind} spec has exactly {', '.join(sorted(SPEC_KEYS[kind]))} "
                          f"(got {', '.join(sorted(keys)) or 'nothing'})")
    if kind == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: values must be a non-empty list")
        return {"type": kind, "values": [_value(knob, v, base, f"{where}: value {v!r}") for v in values]}
    low, high = (_value(knob, spec[end], base, f"{where}: {end} {spec[end]!r}") for end in ("low", "high"))
    if kind == "int" and not all(isinstance(spec[end], int) or float(spec[end]).is_integer() for end in ("low", "high")):
        raise ConfigError(f"{where}: an int range needs whole numbers (got {spec['low']!r}, {spec['high']!r})")
    if low > high or (kind != "int" and low == high):
        raise ConfigError(f"{where}: low {low} must be below high {high} (a plain value fixes a knob)")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: a loguniform range needs low > 0 (got {low})")
    return {"type": kind, "low": low, "high": high}


def _value(knob: str, value, base: TrainConfig, where: str, names_knob: bool = True):
    """``value`` as TrainConfig holds it, if a configuration with it is valid."""
    try:
        return getattr(TrainConfig.from_dict({**base.to_dict(), knob: value}), knob)
    except ConfigError as e:
        problem = e.message.removeprefix(f"{knob}: ") if names_knob else e.message  # said once
        raise ConfigError(f"{where}: {problem}") from None


def to_tune(space: dict) -> dict:
    """Ray Tune's samplers for a space that `load_space` checked."""
    return {knob: SAMPLERS[spec["type"]](spec) if isinstance(spec, dict) else spec for knob, spec in space.items()}
