"""The `sertune` command line: corpus -> prepare -> train | tune -> sweep -> report, and demo."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
from pathlib import Path

import click

from sertune import fsutil, paths, ray_runtime
from sertune.config import TrainConfig
from sertune.features import FeatureConfig

TRAIN_OPTIONS = [
    ("--n-att", int, "attention vectors N_att"), ("--seed", int, "seed: init, shuffling, dropout"),
    ("--lr", float, "AdamW learning rate"), ("--batch-size", int, "batch size"),
    ("--dropout", float, "dropout before the output layer"), ("--weight-decay", float, "AdamW weight decay"),
    ("--cycles", int, "cosine-annealing cycles in the epoch budget"), ("--epochs", int, "epochs"),
    ("--hidden-size", int, "LSTM hidden size"), ("--num-layers", int, "LSTM layers"),
    ("--split", click.Choice(["speaker", "random"]), "protocol: speaker-independent or stratified random"),
    ("--folds", int, "actor k-fold cross-validation (K >= 3); 0: one fixed split"),
    ("--split-seed", int, "seed of the random split"),
    ("--norm", click.Choice(["global", "utterance"]), "feature normalisation (statistics from training speakers)"),
    ("--device", str, "auto, cpu, cuda, cuda:1 ..."),
    ("--precision", click.Choice(["fp32", "bf16"]), "bf16 autocast: about 2x faster on CPUs with AVX512-BF16 and on GPUs"),
]


def train_options(skip=()):
    def decorate(f):
        for flag, typ, help_ in reversed(TRAIN_OPTIONS):
            if flag not in skip:
                f = click.option(flag, type=typ, default=None, help=help_)(f)
        return f
    return decorate


def overrides(cfg: TrainConfig, opts: dict) -> TrainConfig:
    names = {flag[2:].replace("-", "_") for flag, _, _ in TRAIN_OPTIONS}
    return cfg.replace(**{k: v for k, v in opts.items() if k in names and v is not None})


def ray_options(f):
    f = click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a private local Ray on loopback)")(f)
    f = click.option("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")(f)
    f = click.option("--num-gpus", type=float, default=None, help="GPUs of the local Ray (default: detected)")(f)
    return f


def trial_options(f):
    f = click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)(f)
    f = click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=None,
                     help="fractional GPUs per trial, e.g. 0.25 packs four trials on a GPU (default: 0.25 if the cluster has GPUs, else 0)")(f)
    return f


def default_gpus(gpus_per_trial: float | None) -> float:
    if gpus_per_trial is not None:
        return gpus_per_trial
    return 0.25 if ray_runtime.cluster_gpus() > 0 else 0.0


def experiment_option(f):
    return click.option("--experiment-dir", default=None,
                        help=f"local path or URI (s3://...) for tune/sweep/report output (default: $SERTUNE_EXPERIMENT_DIR or ./{paths.DEFAULT_EXPERIMENT_DIR})")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="sertune")
def cli():
    """Multi-vector attention LSTM speech emotion recognition: tune and seed-sweep on Ray."""


@cli.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder to write Actor_XX/*.wav into")
@click.option("--actors", type=int, default=8, show_default=True, help="actors (even: half male, half female)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sample-rate", type=int, default=16000, show_default=True)
def corpus(out, actors, seed, sample_rate):
    """Write the built-in synthetic corpus (RAVDESS names and layout; not real speech)."""
    from sertune.synthetic import write_corpus

    if actors < 6:
        raise click.BadParameter("at least 6 actors (3 per gender) for a speaker-independent split", param_hint="--actors")
    n = write_corpus(out, actors=actors, seed=seed, sample_rate=sample_rate)
    click.echo(f"{out}: {n} synthetic utterances of {actors} actors")


def feature_options(f):
    d = FeatureConfig()
    for name, typ, help_ in reversed([
        ("sample_rate", int, "resample every file to this rate (Hz)"), ("n_mfcc", int, "MFCC coefficients"),
        ("n_fft", int, "FFT size (samples)"), ("win_ms", float, "analysis window (ms)"),
        ("hop_ms", float, "hop between frames (ms)"), ("n_mels", int, "mel bands"),
        ("fmin", float, "lowest mel frequency (Hz)"), ("fmax", float, "highest mel frequency (Hz)"),
    ]):
        f = click.option("--" + name.replace("_", "-"), name, type=typ, default=getattr(d, name), show_default=True, help=help_)(f)
    return f


@cli.command()
@click.option("--data", required=True, help="RAVDESS-layout folder (Actor_XX/*.wav|flac, any rate, mono or stereo)")
@click.option("--store", required=True, help="store location: a path or a URI pyarrow reads (s3://, gs://, hdfs://)")
@click.option("--force", is_flag=True, help="rebuild even if a store with the same parameters exists")
@click.option("--skip-bad", is_flag=True, help="skip unreadable files (listed in the manifest) instead of aborting")
@feature_options
@ray_options
def prepare(data, store, force, skip_bad, address, num_cpus, num_gpus, **features):
    """Decode, resample and compute MFCC for a corpus into a sharded Parquet store (on Ray)."""
    from sertune.prepare import prepare as run

    _, msg = run(data, store, FeatureConfig(**features), force=force, skip_bad=skip_bad,
                 address=address, num_cpus=num_cpus, num_gpus=num_gpus)  # Ray starts only if there is work
    click.echo(msg)


@cli.command()
@click.option("--store", required=True)
@click.option("--out", default="sertune-train", show_default=True, help="folder for result.json and model.pt")
@train_options()
def train(store, out, **opts):
    """Train one model without Ray; print validation and test UAR; save the result and weights."""
    import torch

    from sertune.store import load_store
    from sertune.trainable import result_row
    from sertune.train import train as run
    from sertune.provenance import code_version

    cfg = overrides(TrainConfig(), opts)
    fs = load_store(store)

    def show(m, _run):
        click.echo(f"epoch {m['epoch']:3d}  loss {m['train_loss']:.4f}  val UAR {m['val_uar']:.4f}  "
                   f"best {m['best_val_uar']:.4f}  {m['epoch_time_s']:.2f}s")

    training_result = run(cfg, fs, on_epoch=show)
    row = result_row(cfg, training_result, fs.store_hash, code_version())
    Path(out).mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(training_result.checkpoint, buf)
    fsutil.write_bytes_atomic(os.path.join(out, "model.pt"), buf.getvalue())  # weights first: a result.json always has its model
    fsutil.write_bytes_atomic(os.path.join(out, "result.json"), json.dumps({**row, "history": training_result.history}, indent=2).encode())
    click.echo(f"val UAR {training_result.val_uar:.4f} (best epoch {training_result.best_epoch})  "
               f"test UAR {training_result.uar:.4f}  -> {out}/result.json")


@cli.command()
@click.option("--store", required=True)
@experiment_option
@click.option("--space", type=click.Path(exists=True, dir_okay=False), default=None, help="YAML/TOML search space (see README)")
@click.option("--num-samples", type=click.IntRange(min=1), default=20, show_default=True, help="Optuna trials")
@click.option("--max-concurrent", type=click.IntRange(min=0), default=0, show_default=True, help="0: as many as resources allow")
@click.option("--grace-period", type=click.IntRange(min=1), default=10, show_default=True, help="ASHA: epochs before a trial can be stopped")
@click.option("--reduction-factor", type=click.IntRange(min=2), default=3, show_default=True, help="ASHA reduction factor")
@click.option("--search-seed", type=int, default=0, show_default=True, help="TPE sampler seed")
@click.option("--max-failures", type=click.IntRange(min=0), default=2, show_default=True, help="retries of a failed trial from its checkpoint")
@train_options(skip=("--n-att", "--lr", "--batch-size", "--dropout", "--weight-decay", "--cycles"))
@trial_options
@ray_options
def tune(store, experiment_dir, space, num_samples, max_concurrent, grace_period, reduction_factor, search_seed,
         max_failures, cpus_per_trial, gpus_per_trial, address, num_cpus, num_gpus, **opts):
    """Stage 1: tune the N_att = 1 baseline with OptunaSearch (TPE) + ASHA on validation UAR."""
    from sertune.search_space import load_space
    from sertune.tuning import TuneSettings, run_tune

    exp = paths.experiment_dir(experiment_dir)
    base = overrides(TrainConfig(threads=max(1, int(cpus_per_trial))), opts)
    search = load_space(space)
    with ray_runtime.connect(address, num_cpus, num_gpus):
        settings = TuneSettings(num_samples, max_concurrent, grace_period, reduction_factor, search_seed,
                                cpus_per_trial, default_gpus(gpus_per_trial), max_failures)
        best = run_tune(store, exp, base, search, settings)
    tuned = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["tuned"].items())
    click.echo(f"best validation UAR {best['best_val_uar']:.4f} with {tuned}")
    click.echo(f"-> {paths.best_config(exp)}  (all trials: {paths.tune_trials(exp)})")


def parse_int_list(ctx, param, value):
    if value is None:
        return None
    try:
        values = tuple(dict.fromkeys(int(v) for v in value.split(",")))  # in order, once each
    except ValueError:
        raise click.BadParameter("a comma-separated list of integers, e.g. 1,2,4,8") from None
    if min(values) < 1:
        raise click.BadParameter("every N_att must be >= 1")
    return values


@cli.command()
@click.option("--store", required=True)
@experiment_option
@click.option("--seeds", type=int, default=10, show_default=True, help="seeds 0..S-1 per N_att")
@click.option("--n-att", "n_att_list", callback=parse_int_list, default="1,2,4,8,16,32,64", show_default=True)
@click.option("--config", "config_file", default=None, help="tuned configuration (default: the experiment's tune/best_config.json)")
@click.option("--no-tuned", is_flag=True, help="use sertune's defaults (plus flags) instead of a tuned configuration")
@click.option("--results", "results_path", default=None, help="results table (default: <experiment>/sweep/results.parquet; .csv on request)")
@click.option("--max-failures", type=click.IntRange(min=0), default=3, show_default=True)
@train_options(skip=("--n-att", "--seed"))
@trial_options
@ray_options
def sweep(store, experiment_dir, seeds, n_att_list, config_file, no_tuned, results_path, max_failures,
          cpus_per_trial, gpus_per_trial, address, num_cpus, num_gpus, **opts):
    """Stage 2: the N_att x seeds grid at the tuned configuration; reruns skip finished pairs."""
    from sertune.sweep import SweepSettings, pending_pairs, run_sweep
    from sertune.tuning import load_best_config

    exp = paths.experiment_dir(experiment_dir)
    base = TrainConfig() if no_tuned else load_best_config(config_file or paths.best_config(exp))
    base = overrides(base.replace(threads=max(1, int(cpus_per_trial))), opts)
    if seeds < 1:
        raise click.BadParameter("at least 1 seed", param_hint="--seeds")
    settings = SweepSettings(n_att_list, seeds, cpus_per_trial, gpus_per_trial or 0.0, max_failures)
    nothing_to_do = not pending_pairs(results_path or paths.sweep_results(exp), settings)
    with contextlib.nullcontext() if nothing_to_do else ray_runtime.connect(address, num_cpus, num_gpus):
        if not nothing_to_do:  # no Ray started just to find that every pair is done
            settings = dataclasses.replace(settings, gpus_per_trial=default_gpus(gpus_per_trial))
        ran, location = run_sweep(store, exp, base, settings, results_path)
    total = len(n_att_list) * seeds
    click.echo(f"{location}: {total} of {total} pairs done ({ran} run now, {total - ran} already there)")


@cli.command()
@click.option("--workdir", default="sertune-demo", show_default=True, help="where the corpus, store and experiment go")
@click.option("--actors", type=int, default=8, show_default=True)
@click.option("--epochs", type=int, default=12, show_default=True)
@click.option("--tune-samples", type=int, default=8, show_default=True)
@click.option("--seeds", type=int, default=3, show_default=True)
@ray_options
@click.pass_context
def demo(ctx, workdir, actors, epochs, tune_samples, seeds, address, num_cpus, num_gpus):
    """The whole pipeline on the built-in corpus: corpus, prepare, tune, sweep, report."""
    work = Path(workdir)
    data, store, exp = work / "corpus", str(work / "store"), str(work / "experiment")
    if not (data / "Actor_01").exists():
        ctx.invoke(corpus, out=str(data), actors=actors, seed=0, sample_rate=16000)
    with ray_runtime.connect(address, num_cpus, num_gpus):
        ctx.invoke(prepare, data=str(data), store=store, force=False, skip_bad=False, address=None,
                   num_cpus=None, num_gpus=None, **FeatureConfig().to_dict())
        ctx.invoke(tune, store=store, experiment_dir=exp, space=None, num_samples=tune_samples, max_concurrent=0,
                   grace_period=3, reduction_factor=2, search_seed=0, max_failures=2, cpus_per_trial=1.0,
                   gpus_per_trial=None, address=None, num_cpus=None, num_gpus=None, epochs=epochs)
        ctx.invoke(sweep, store=store, experiment_dir=exp, seeds=seeds, n_att_list=(1, 2, 4, 8, 16, 32, 64),
                   config_file=None, no_tuned=False, results_path=None, max_failures=3, cpus_per_trial=1.0,
                   gpus_per_trial=None, address=None, num_cpus=None, num_gpus=None, epochs=epochs)
    ctx.invoke(cli.commands["report"], experiment_dir=exp, results_file=None, out_dir=None, kde=())


def _register_report():
    from sertune.report import report_command

    cli.add_command(report_command)


_register_report()


def main():
    import ray.exceptions

    try:
        cli(prog_name="sertune")
    except ray.exceptions.RayError as e:  # a worker crash or a non-sertune error inside a task
        click.echo(f"Error: {type(e).__name__}: {str(e).strip().splitlines()[-1]}", err=True)
        sys.exit(8)


if __name__ == "__main__":
    main()
