"""A trained model on disk: ``model.pt``, written by `sertune train` and by every sweep trial.

One record per training run: its configuration, the store it was trained on (location, hash
and feature parameters, so new audio is featurised exactly as the store was), and per fold the
best weights, the normalisation statistics of the training speakers and the test utterances
with the logits training computed for them. Tensors and plain types only, so
``torch.load(weights_only=True)`` reads it: loading a model runs no code from the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch

from sertune import fsutil, paths
from sertune.audio.labels import EMOTIONS
from sertune.config import FeatureConfig, TrainConfig
from sertune.errors import ConfigError, StoreError
from sertune.training.model import AttentionLSTM

FORMAT = "sertune-model"
VERSION = 1
MODEL_FILE = "model.pt"


def model_bytes(checkpoint: dict, store: str) -> bytes:
    """``TrainResult.checkpoint`` as a model record naming its store."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "store": fsutil.normalize(store), **checkpoint}, buf)
    return buf.getvalue()


def save_model(location: str, checkpoint: dict, store: str) -> None:
    fsutil.write_bytes_atomic(location, model_bytes(checkpoint, store))


@dataclass
class FoldModel:
    """One fold's network, ready for inference, with what it needs around it."""

    name: str  # e.g. "n_att=8/seed=3/fold=0", for messages
    record: dict
    fold: dict
    net: AttentionLSTM

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.record["config"])

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig(**self.record["features"])

    @property
    def norm_stats(self):
        return self.fold["norm_mean_std"]

    @property
    def classes(self) -> tuple[str, ...]:
        return classes_of(self.record)


def classes_of(record: dict) -> tuple[str, ...]:
    """The model's outputs, in order: its store's label set (RAVDESS's before label sets were kept)."""
    return tuple(record.get("classes", EMOTIONS))


def read_record(location: str) -> dict:
    if not fsutil.exists(location):
        raise ConfigError(f"--model {location}: no such model file")
    try:
        record = torch.load(io.BytesIO(fsutil.read_bytes(location)), weights_only=True, map_location="cpu")
    except Exception as e:  # pickle and zip errors come in many types
        raise ConfigError(f"--model {location}: not a sertune model file ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        what = "a checkpoint of an older sertune (no feature parameters)" if isinstance(record, dict) and "folds" in record else "not a sertune model file"
        raise ConfigError(f"--model {location}: {what}; retrain it with this sertune")
    if record.get("version") != VERSION:
        raise ConfigError(f"--model {location}: model format v{record.get('version')}, this sertune reads v{VERSION}")
    return record


def fold_models(record: dict, name: str) -> list[FoldModel]:
    cfg = TrainConfig.from_dict(record["config"])
    dim = record["features"]["n_mfcc"]
    out = []
    for i, fold in enumerate(record["folds"]):
        net = AttentionLSTM(dim, cfg.hidden_size, cfg.num_layers, cfg.n_att, cfg.dropout, len(classes_of(record)))
        net.load_state_dict(fold["weights"])
        label = name + (f"/fold={i}" if len(record["folds"]) > 1 else "")
        out.append(FoldModel(label, record, fold, net.eval()))
    return out


def sweep_seeds(exp: str, n_att: int) -> list[int]:
    """The seeds whose models a sweep kept for this N_att."""
    fs, root = fsutil.resolve(paths.sweep_models(exp, n_att))
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    seeds = []
    for info in infos:
        base = info.base_name
        if info.type == pafs.FileType.Directory and base.startswith("seed=") and base[5:].isdigit():
            if fsutil.exists(fsutil.join(fsutil.join(paths.sweep_models(exp, n_att), base), MODEL_FILE)):
                seeds.append(int(base[5:]))
    return sorted(seeds)


def resolve_models(model: str, n_att: int | None = None, seeds: tuple[int, ...] = ()) -> list[FoldModel]:
    """``--model``: a model.pt, a `sertune train` output folder, or an experiment directory
    with ``--n-att`` (and ``--seed``, repeatable; default: every seed the sweep kept)."""
    model = fsutil.normalize(model)
    if not fsutil.exists(model):
        raise ConfigError(f"--model {model}: no such file or folder")
    if not fsutil.is_dir(model):
        return fold_models(read_record(model), "model")
    if fsutil.exists(fsutil.join(model, MODEL_FILE)):
        if n_att is not None or seeds:
            raise ConfigError(f"--model {model}: a single trained model; --n-att and --seed choose within an experiment directory")
        return fold_models(read_record(fsutil.join(model, MODEL_FILE)), "model")
    if n_att is None:
        raise ConfigError(f"--model {model}: an experiment directory needs --n-att (and optionally --seed)")
    seeds = tuple(seeds) or tuple(sweep_seeds(model, n_att))
    if not seeds:
        raise ConfigError(f"--model {model}: no sweep models for N_att = {n_att} "
                          f"(expected {paths.sweep_models(model, n_att)}/seed=S/{MODEL_FILE})")
    out = []
    for seed in seeds:
        location = paths.sweep_model(model, n_att, seed)
        if not fsutil.exists(location):
            raise ConfigError(f"--model {model}: no model for N_att = {n_att}, seed {seed} ({location})")
        out += fold_models(read_record(location), f"n_att={n_att}/seed={seed}")
    return out


def check_store(models: list[FoldModel], store: str | None) -> str | None:
    """The store the models name (or ``store``), checked: feature parameters and label set must match.

    Returns the store location when it can be read, None when it is gone (the record's own
    feature parameters then suffice for new audio)."""
    from sertune.store.schema import read_manifest

    features, classes = models[0].record["features"], models[0].classes
    for m in models[1:]:
        if m.record["features"] != features:
            raise ConfigError(f"{m.name}: other feature parameters than {models[0].name}; cannot combine them")
        if m.classes != classes:
            raise ConfigError(f"{m.name}: other classes than {models[0].name}; cannot combine them")
    location = fsutil.normalize(store) if store else models[0].record["store"]
    try:
        manifest = read_manifest(location)
    except StoreError:
        if store:
            raise
        return None
    if manifest["features"] != features:
        diff = sorted(k for k in features if manifest["features"].get(k) != features[k])
        raise StoreError(f"{location}: its feature parameters differ from the model's ({', '.join(diff)}); "
                         "this model cannot be used with this store")
    stored = tuple(manifest.get("corpus", {}).get("classes", EMOTIONS))
    if stored != classes:
        raise StoreError(f"{location}: its classes ({', '.join(stored)}) are not the model's ({', '.join(classes)}); "
                         "this model cannot be used with this store")
    return location
