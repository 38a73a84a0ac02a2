"""`sertune tune`: stage 1, the N_att = 1 baseline tuned on validation UAR."""

from __future__ import annotations

import dataclasses

import click

from sertune.cli.options import default_gpus, experiment_option, overrides, ray_options, store_option, train_options, trial_options
from sertune.cli.watch import watch_options, watching
from sertune.config import TUNED_KNOBS, TrainConfig
from sertune.experiment import TuneSettings, default


def _opt(name):
    return default(TuneSettings, name)


@click.command()
@store_option
@experiment_option
@click.option("--space", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML/TOML search space (see README)  [default: sertune's five-knob space]")
@click.option("--num-samples", type=click.IntRange(min=1), default=_opt("num_samples"), show_default=True, help="Optuna trials")
@click.option("--max-concurrent", type=click.IntRange(min=0), default=_opt("max_concurrent"), show_default=True,
              help="most trials at once; 0: as many as resources allow")
@click.option("--grace-period", type=click.IntRange(min=1), default=_opt("grace_period"), show_default=True,
              help="ASHA: epochs before a trial can be stopped")
@click.option("--reduction-factor", type=click.IntRange(min=2), default=_opt("reduction_factor"), show_default=True,
              help="ASHA reduction factor")
@click.option("--search-seed", type=int, default=_opt("search_seed"), show_default=True, help="TPE sampler seed")
@train_options(skip=("--n-att", *(f"--{k.replace('_', '-')}" for k in TUNED_KNOBS)))
@trial_options(TuneSettings)
@ray_options
@watch_options(optuna=True)
def tune(store, experiment_dir, space, address, num_cpus, num_gpus, gpus_per_trial, verbose, mlflow, optuna_storage,
         **opts):
    """Stage 1: tune the N_att = 1 baseline with OptunaSearch (TPE) + ASHA on validation UAR."""
    from sertune import fsutil, paths, ray_runtime
    from sertune.preflight import check_device, check_trial_resources, check_writable
    from sertune.search_space import load_space
    from sertune.store.schema import read_manifest

    names = {f.name for f in dataclasses.fields(TuneSettings)}
    settings = TuneSettings(**{k: v for k, v in opts.items() if k in names})
    exp = paths.experiment_dir(experiment_dir)
    base = overrides(TrainConfig(threads=max(1, int(settings.cpus_per_trial))), opts)
    search = load_space(space, base)  # before anything is written or started
    for location in (store, exp):  # cheap checks first: no Ray start to find a bucket or the store missing
        fsutil.check_bucket(location)
    read_manifest(store)
    check_writable(exp, "--experiment-dir")
    local = ray_runtime.resolve_address(address) is None
    with watching(exp, "tune", verbose, mlflow, optuna_storage) as watch, \
            ray_runtime.connect(address, num_cpus, num_gpus, quiet=not verbose):
        from sertune.trials.tune import run_tune

        settings = dataclasses.replace(settings, gpus_per_trial=default_gpus(gpus_per_trial))
        check_trial_resources(settings.cpus_per_trial, settings.gpus_per_trial, local)
        check_device(base.device, settings.gpus_per_trial, local)
        best = run_tune(store, exp, base, search, settings, watch)
    tuned = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["tuned"].items())
    which = f" (trial {best['trial']})" if best.get("trial") is not None else ""
    click.echo(f"best validation UAR {best['best_val_uar']:.4f}{which} with {tuned}")
    if best.get("objective", "best_val_uar") != "best_val_uar":
        click.echo(f"Warning: LEAK: tuned on test UAR ({best['objective']} {best['best_objective']:.4f}); "
                   "the configuration is chosen on the test speakers", err=True)
    if best["importances"]:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in best["importances"].items())
        click.echo(f"hyperparameter importances ({best['importances_note']}): {ranked}")
    else:
        click.echo(f"hyperparameter importances: {best['importances_note']}")
    _draw_search(exp, best, base.epochs, settings)
    click.echo(f"-> {paths.best_config(exp)}  (all trials: {paths.tune_trials(exp)}; the search drawn: "
               f"{paths.tune_figure(exp)})")
    if best["optuna_storage"]:
        click.echo(f"Optuna study {best['optuna_study']!r}: optuna-dashboard {best['optuna_storage']}")


def _draw_search(exp: str, best: dict, max_epochs: int, settings) -> None:
    """EXP/tune/search.png from the files the tune wrote (curves.parquet, trials.parquet)."""
    from sertune import fsutil, paths, results
    from sertune.report.search import asha_rungs, pick_knob, search_png

    curves, trials = results.read_table(paths.tune_curves(exp)), results.read_table(paths.tune_trials(exp))
    knob, why = pick_knob(best["importances"], trials)
    rungs = asha_rungs(min(settings.grace_period, max_epochs), settings.reduction_factor, max_epochs)
    png = search_png(curves, trials, str(best["trial_id"]), max_epochs, rungs, knob, why)
    fsutil.write_bytes_atomic(paths.tune_figure(exp), png)
