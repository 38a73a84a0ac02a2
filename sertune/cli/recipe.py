"""`sertune recipe`: a whole study from one recipe file: prepare, tune, sweep, report."""

from __future__ import annotations

from pathlib import Path

import click

from sertune.cli.options import ray_options


@click.command()
@click.argument("recipe")
@click.option("--data", required=True, help="RAVDESS-layout folder (Actor_XX/*.wav|flac)")
@click.option("--workdir", required=True, help="where the store, the experiment and the report go (resumable)")
@click.option("--tune/--no-tune", "do_tune", default=True, show_default=True,
              help="tune first; --no-tune sweeps at the recipe's fixed training values (a separate experiment)")
@click.option("--num-samples", type=click.IntRange(min=1), default=None, help="Optuna trials  [default: the recipe's]")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="seeds per N_att  [default: the recipe's]")
@click.option("--n-att", default=None, help="N_att values, comma-separated  [default: the recipe's]")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None, help="[default: fp32]")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--selected-on", type=click.Choice(["validation", "test"]), default=None,
              help="LEAK when test: tune on the pooled test UAR, as the authors' code does (to measure it)  "
                   "[default: validation]")
@click.option("--fixed-fold-seed", type=click.IntRange(min=0), default=None,
              help="LEAK: seed every fold with this whatever the run's seed, as the authors' code does  [default: off]")
@ray_options
@click.pass_context
def recipe(ctx, recipe, data, workdir, do_tune, num_samples, seeds, n_att, precision, cpus_per_trial,
           selected_on, fixed_fold_seed, address, num_cpus, num_gpus):
    """A whole study from a recipe (shipped: authors-5fold): prepare, tune, sweep, report."""
    import yaml

    from sertune import ray_runtime
    from sertune.cli.data import prepare
    from sertune.cli.report import report
    from sertune.cli.sweep import parse_int_list, sweep
    from sertune.cli.tune import tune
    from sertune.config import TUNED_KNOBS
    from sertune.errors import ConfigError
    from sertune.recipes import load
    from sertune.training.folds import resolve

    r = load(recipe)
    if num_samples is not None and not do_tune:
        raise ConfigError("--num-samples is for the tune stage, which --no-tune skips")
    work = Path(workdir)
    store, exp = str(work / "store"), str(work / ("experiment" if do_tune else "experiment-untuned"))
    train = dict(r.train)
    if train.get("actor_folds"):
        train["actor_folds"] = resolve(train["actor_folds"])
    if precision:
        train["precision"] = precision
    if selected_on == "test" and not do_tune:
        raise ConfigError("--selected-on test chooses the tuned configuration on test UAR; --no-tune tunes nothing")
    train.update({k: v for k, v in (("selected_on", selected_on), ("fixed_fold_seed", fixed_fold_seed)) if v is not None})
    fixed = {k: v for k, v in train.items() if k not in TUNED_KNOBS}
    sweep_opts = {"seeds": seeds or r.sweep.get("seeds", 10),
                  "n_att": parse_int_list(None, None, n_att) if n_att else tuple(r.sweep.get("n_att", (1, 64)))}
    work.mkdir(parents=True, exist_ok=True)
    with ray_runtime.connect(address, num_cpus, num_gpus):  # one Ray for every stage
        ctx.invoke(prepare, data=data, store=store, **r.features)
        if do_tune:
            space = work / f"{r.name}.space.yaml"  # the space as run, next to its results
            space.write_text(yaml.safe_dump(r.space, sort_keys=False))
            tune_opts = {**r.tune, **({"num_samples": num_samples} if num_samples else {})}
            ctx.invoke(tune, store=store, experiment_dir=exp, space=str(space), cpus_per_trial=cpus_per_trial,
                       **tune_opts, **fixed)
            ctx.invoke(sweep, store=store, experiment_dir=exp, cpus_per_trial=cpus_per_trial, **sweep_opts, **fixed)
        else:
            ctx.invoke(sweep, store=store, experiment_dir=exp, no_tuned=True, cpus_per_trial=cpus_per_trial,
                       **sweep_opts, **train)
    ctx.invoke(report, experiment_dir=exp)
