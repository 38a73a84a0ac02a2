"""`sertune demo`: the whole pipeline on the built-in corpus."""

from __future__ import annotations

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
@ray_options
@click.pass_context
def demo(ctx, workdir, actors, epochs, tune_samples, seeds, address, num_cpus, num_gpus):
    """The whole pipeline on the built-in corpus: corpus, prepare, tune, sweep, report."""
    from sertune import ray_runtime
    from sertune.cli.data import corpus, prepare
    from sertune.cli.report import report
    from sertune.cli.sweep import sweep
    from sertune.cli.tune import tune

    work = Path(workdir)
    data, store, exp = work / "corpus", str(work / "store"), str(work / "experiment")
    if not (data / "Actor_01").exists():
        ctx.invoke(corpus, out=str(data), actors=actors)
    with ray_runtime.connect(address, num_cpus, num_gpus):  # one Ray for every stage
        ctx.invoke(prepare, data=str(data), store=store)
        ctx.invoke(tune, store=store, experiment_dir=exp, num_samples=tune_samples, grace_period=3,
                   reduction_factor=2, epochs=epochs, address=address)  # the stages' resource checks: local or cluster
        # ctx.invoke skips option callbacks: the grid goes in parsed, as the callback would give it
        ctx.invoke(sweep, store=store, experiment_dir=exp, seeds=seeds, n_att=DEFAULT_N_ATT, epochs=epochs, address=address)
    ctx.invoke(report, experiment_dir=exp)
