"""Recipes: a whole study (features, fixed training options, search space, tune and sweep
settings) in one YAML file, run by `sertune recipe`. Shipped: ``authors-5fold`` (the paper's
protocol, without its leaks; see the file's comments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sertune.errors import ConfigError

HERE = Path(__file__).parent
SECTIONS = ("features", "train", "space", "tune", "sweep")


@dataclass(frozen=True)
class Recipe:
    name: str
    features: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    tune: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load(name_or_path: str) -> Recipe:
    """A shipped recipe by name, or a YAML file; every section checked against what it feeds."""
    import yaml

    path = HERE / f"{name_or_path}.yaml" if name_or_path in names() else Path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{name_or_path}: not a recipe ({', '.join(names())}) or a readable YAML file "
                          f"({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ConfigError(f"{path}: a recipe has the sections {', '.join(SECTIONS)} only")
    recipe = Recipe(path.stem, **{k: dict(v or {}) for k, v in data.items()})
    _check(recipe, path)
    return recipe


def _check(r: Recipe, path: Path) -> None:
    from sertune.config import FeatureConfig, TrainConfig
    from sertune.experiment import SweepSettings, TuneSettings
    from sertune.training.folds import resolve

    try:
        FeatureConfig(**r.features).validate()
        TrainConfig.from_dict({**r.train, "actor_folds": resolve(r.train.get("actor_folds", "")) if r.train.get("actor_folds") else ""})
        TuneSettings(**r.tune)
        SweepSettings(**{**r.sweep, "n_att": tuple(r.sweep.get("n_att", ()))} if "n_att" in r.sweep else r.sweep)
    except TypeError as e:
        raise ConfigError(f"{path}: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e.message}") from None
