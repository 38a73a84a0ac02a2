"""`sertune sweep`: stage 2, the N_att x seeds grid."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import click

from sertune.cli.options import default_gpus, experiment_option, overrides, ray_options, store_option, train_options, trial_options
from sertune.cli.watch import watch_options, watching
from sertune.experiment import DEFAULT_N_ATT, SweepSettings, default


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


@click.command()
@store_option
@experiment_option
@click.option("--seeds", type=click.IntRange(min=1), default=default(SweepSettings, "seeds"), show_default=True,
              help="seeds 0..S-1 per N_att")
@click.option("--n-att", "n_att", callback=parse_int_list, default=",".join(map(str, DEFAULT_N_ATT)), show_default=True,
              help="the N_att values to sweep, comma-separated")
@click.option("--config", "config_file", default=None,
              help="tuned configuration  [default: the experiment's tune/best_config.json]")
@click.option("--no-tuned", is_flag=True, help="use sertune's defaults (plus flags) instead of a tuned configuration")
@click.option("--results", "results_path", default=None,
              help="results table; .csv on request  [default: <experiment>/sweep/results.parquet]")
@train_options(skip=("--n-att", "--seed"))
@trial_options(SweepSettings)
@ray_options
@watch_options()
def sweep(store, experiment_dir, config_file, no_tuned, results_path, address, num_cpus, num_gpus, gpus_per_trial,
          verbose, mlflow, **opts):
    """Stage 2: the N_att x seeds grid at the tuned configuration; reruns skip finished pairs."""
    from sertune import fsutil, paths, ray_runtime
    from sertune.config import TrainConfig
    from sertune.errors import ConfigError
    from sertune.preflight import check_device, check_trial_resources, check_writable
    from sertune.store.schema import read_manifest
    from sertune.trials.sweep import check_same_experiment, pending_pairs
    from sertune.trials.tune import load_best_config

    names = {f.name for f in dataclasses.fields(SweepSettings)}
    settings = SweepSettings(**{k: v for k, v in opts.items() if k in names})
    exp = paths.experiment_dir(experiment_dir)
    for location in (store, exp, results_path or exp):
        fsutil.check_bucket(location)
    if no_tuned and config_file:
        raise ConfigError("--config and --no-tuned exclude each other")
    base = TrainConfig() if no_tuned else load_best_config(config_file or paths.best_config(exp))
    swept = ("n_att", "seed")  # the grid, not training options
    base = overrides(base.replace(threads=max(1, int(settings.cpus_per_trial))),
                     {k: v for k, v in opts.items() if k not in swept})
    location = results_path or paths.sweep_results(exp)
    check_same_experiment(location, read_manifest(store)["store_hash"], base)  # cheap checks before Ray starts
    pending = pending_pairs(location, settings)
    if pending:
        check_writable(exp, "--experiment-dir")
        check_writable(os.path.dirname(location) if results_path else None, "--results")
    local = ray_runtime.resolve_address(address) is None
    with watching(exp, "sweep", verbose, mlflow) as watch, \
            contextlib.nullcontext() if not pending else ray_runtime.connect(address, num_cpus, num_gpus, quiet=not verbose):
        from sertune.trials.sweep import run_sweep

        if pending:  # no Ray started just to find that every pair is done
            settings = dataclasses.replace(settings, gpus_per_trial=default_gpus(gpus_per_trial))
            check_trial_resources(settings.cpus_per_trial, settings.gpus_per_trial, local)
            check_device(base.device, settings.gpus_per_trial, local)
        ran, location = run_sweep(store, exp, base, settings, results_path, watch)
    total = len(settings.pairs())
    click.echo(f"{location}: {total} of {total} pairs done ({ran} run now, {total - ran} already there)")
