"""Options shared by several commands; every default shown comes from the dataclass that owns it
(TrainConfig, FeatureConfig, the stage settings)."""

from __future__ import annotations

import click

from sertune.config import NORMS, FeatureConfig, TrainConfig
from sertune.experiment import DEFAULT_EXPERIMENT_DIR, TrialResources

# flag, type, help. Defaults are TrainConfig's; the options default to None so that only what
# the user gave overrides a tuned configuration.
TRAIN_OPTIONS = [
    ("--n-att", click.IntRange(min=1), "attention vectors N_att"),
    ("--seed", click.IntRange(min=0), "seed: initialisation, shuffling, dropout"),
    ("--lr", click.FloatRange(min=0, min_open=True), "AdamW learning rate"),
    ("--batch-size", click.IntRange(min=1), "batch size"),
    ("--dropout", click.FloatRange(0, 1, max_open=True), "dropout before the output layer"),
    ("--weight-decay", click.FloatRange(min=0), "AdamW weight decay"),
    ("--cycles", click.IntRange(min=1), "cosine-annealing cycles (warm restarts) in the epoch budget"),
    ("--epochs", click.IntRange(min=1), "epochs (tune: the most a trial may run)"),
    ("--optimizer", click.Choice(["adamw", "adam"]), "adamw: decoupled weight decay; adam: weight decay as L2 (the authors')"),
    ("--restart-epochs", click.IntRange(min=0), "warm restarts every N epochs, stepped per epoch (the authors'); 0: --cycles per batch"),
    ("--eta-min-ratio", click.FloatRange(0, 1, max_open=True), "the schedule's floor as a fraction of lr (the authors': 0.01)"),
    ("--hidden-size", click.IntRange(min=1), "LSTM hidden size"),
    ("--num-layers", click.IntRange(min=1), "LSTM layers"),
    ("--context-norm/--no-context-norm", None, "BatchNorm on the context vector before dropout (the authors' LSTM-SA)"),
    ("--init", click.Choice(["default", "xavier"]), "xavier: Xavier-normal input, orthogonal recurrent weights, forget bias 1 (the authors')"),
    ("--split", click.Choice(["speaker", "random"]), "protocol: speaker-independent or stratified random"),
    ("--folds", click.IntRange(min=0), "K-fold cross-validation (K >= 3; actor groups, or stratified utterances with --split random); 0: one split"),
    ("--actor-folds", str, "fixed actor folds: a preset (authors-5fold, emobox-ravdess), a .yaml/.json file, "
                           "'test/val;test/val;...', or a store whose corpus manifest had a fold column"),
    ("--split-seed", click.IntRange(min=0), "seed of the random split"),
    ("--norm", click.Choice(NORMS), "feature normalisation: global (training speakers' mean/std), utterance (per-utterance CMVN), corpus (every speaker's, test included: the authors' leak, to measure it)"),
    ("--precision", click.Choice(["fp32", "bf16"]), "bf16 autocast: about 2x faster on CPUs with AVX512-BF16 and on GPUs"),
    ("--device", str, "auto, cpu, cuda, cuda:1 ..."),
    ("--selected-on", click.Choice(["validation", "test"]), "LEAK when test: the configuration is chosen on pooled test UAR (tune's objective becomes it; the authors' Optuna objective), recorded in every row, flagged by report; only to measure what it is worth"),
    ("--fixed-fold-seed", click.IntRange(min=0), "LEAK: seed every fold with this, whatever --seed (the authors' re-seeding: repeated runs differ only by nondeterminism), recorded and flagged; default off"),
]
TRAIN_DEFAULTS = TrainConfig()


def _dest(flag: str) -> str:
    return flag.split("/")[0][2:].replace("-", "_")


def train_options(skip=()):
    """TrainConfig's fields as options, less ``skip`` (what the command searches or sweeps)."""
    def decorate(f):
        for flag, typ, help_ in reversed(TRAIN_OPTIONS):
            if flag not in skip:
                default = getattr(TRAIN_DEFAULTS, _dest(flag))
                callback = _actor_folds if flag == "--actor-folds" else None
                f = click.option(flag, _dest(flag), type=typ, default=None, callback=callback,
                                 help=f"{help_}  [default: {default if default != '' else 'none'}]")(f)
        return f
    return decorate


def _actor_folds(ctx, param, value):
    from sertune.training.folds import resolve

    return None if value is None else resolve(value)


def overrides(cfg: TrainConfig, opts: dict) -> TrainConfig:
    """``cfg`` with the training options the user gave."""
    names = {_dest(flag) for flag, _, _ in TRAIN_OPTIONS}
    return cfg.replace(**{k: v for k, v in opts.items() if k in names and v is not None})


def feature_options(f):
    d = FeatureConfig()
    for name, typ, help_ in reversed([
        ("sample_rate", click.IntRange(min=1), "resample every file to this rate (Hz)"),
        ("n_mfcc", click.IntRange(min=1), "MFCC coefficients"),
        ("n_fft", click.IntRange(min=1), "FFT size (samples)"),
        ("win_ms", float, "analysis window (ms)"), ("hop_ms", float, "hop between frames (ms)"),
        ("n_mels", click.IntRange(min=1), "mel bands"),
        ("fmin", float, "lowest mel frequency (Hz)"), ("fmax", float, "highest mel frequency (Hz)"),
    ]):
        f = click.option("--" + name.replace("_", "-"), name, type=typ, default=getattr(d, name),
                         show_default=True, help=help_)(f)
    return f


def ray_options(f):
    f = click.option("--address", default=None,
                     help="Ray cluster address  [default: $RAY_ADDRESS, else a private local Ray on loopback]")(f)
    f = click.option("--num-cpus", type=click.IntRange(min=1), default=None,
                     help="CPUs of the private local Ray  [default: all]")(f)
    f = click.option("--num-gpus", type=click.FloatRange(min=0), default=None,
                     help="GPUs of the private local Ray  [default: detected]")(f)
    return f


def trial_options(settings: type[TrialResources]):
    def decorate(f):
        f = click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True),
                         default=settings.cpus_per_trial, show_default=True, help="CPUs (and torch threads) per trial")(f)
        f = click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=None,
                         help="fractional GPUs per trial, e.g. 0.25 packs four trials on a GPU  "
                              "[default: 0.25 if the cluster has GPUs, else 0]")(f)
        f = click.option("--max-failures", type=click.IntRange(min=0), default=settings.max_failures,
                         show_default=True, help="retries of a failed trial from its last checkpoint")(f)
        return f
    return decorate


def experiment_option(f):
    return click.option("--experiment-dir", default=None,
                        help="local path or URI (s3://...) for tune, sweep and report output  "
                             f"[default: $SERTUNE_EXPERIMENT_DIR or ./{DEFAULT_EXPERIMENT_DIR}]")(f)


def store_option(f):
    return click.option("--store", required=True, help="feature store: a path or a URI (s3://...) built by `sertune prepare`")(f)


def default_gpus(gpus_per_trial: float | None) -> float:
    """0.25 per trial where the (now connected) cluster has GPUs, else 0."""
    from sertune import ray_runtime

    if gpus_per_trial is not None:
        return gpus_per_trial
    return 0.25 if ray_runtime.cluster_gpus() > 0 else 0.0
