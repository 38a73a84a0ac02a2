"""`sertune demo`: the whole pipeline on the built-in corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sertune.cli.options import ray_options
from sertune.experiment import DEFAULT_N_ATT


@click.command()
@click.option("--workdir", default="sertune-demo", show_default=True, help="where the corpus, store and experiment go")
@click.option("--actors", type=click.IntRange(min=6), default=8, show_default=True, help="actors of the built-in corpus")
@click.option("--epochs", type=click.IntRange(min=2), default=12, show_default=True, help="epochs per trial")
@click.option("--tune-samples", type=click.IntRange(min=1), default=8, show_default=True, help="Optuna trials")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="seeds per N_att")
@click.option("--verbose", is_flag=True, help="Ray Tune's own reporter and Ray's log in the terminal")
@ray_options
@click.pass_context
def demo(ctx, workdir, actors, epochs, tune_samples, seeds, verbose, address, num_cpus, num_gpus):
    """The whole pipeline on the built-in corpus: corpus, prepare, tune, sweep, report."""
    from sertune import paths, ray_runtime
    from sertune.cli.data import corpus
    from sertune.cli.report import report
    from sertune.cli.sweep import sweep
    from sertune.cli.tune import tune
    from sertune.cli.watch import log_path
    from sertune.config import FeatureConfig
    from sertune.experiment import DEFAULT_N_ATT
    from sertune.store.prepare import prepare

    work = Path(workdir)
    data, store, exp = work / "corpus", str(work / "store"), paths.experiment_dir(str(work / "experiment"))
    if not (data / "Actor_01").exists():
        ctx.invoke(corpus, out=str(data), actors=actors)
    # One Ray for every stage; its start-up messages go to the experiment's log like the stages'.
    with ray_runtime.logs_to(None if verbose else log_path(exp, "demo")), \
            ray_runtime.connect(address, num_cpus, num_gpus, quiet=not verbose):
        _, msg = prepare(str(data), store, FeatureConfig(), progress=sys.stderr.isatty())  # no bar in a log
        click.echo(msg)
        ctx.invoke(tune, store=store, experiment_dir=exp, num_samples=tune_samples, grace_period=3,
                   reduction_factor=2, epochs=epochs, address=address, verbose=verbose)  # address: local or cluster checks
        # n_att given: ctx.invoke does not run the option's parsing callback on its default string
        ctx.invoke(sweep, store=store, experiment_dir=exp, seeds=seeds, epochs=epochs, n_att=DEFAULT_N_ATT,
                   address=address, verbose=verbose)
    ctx.invoke(report, experiment_dir=exp)
