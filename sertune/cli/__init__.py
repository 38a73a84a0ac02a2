"""The `sertune` command line, in pipeline order: corpus -> prepare -> train | tune -> sweep ->
report, and demo. Each command lives in its own module and imports its heavy libraries (Ray,
torch, librosa, matplotlib) only when it runs, so `sertune --help` stays fast."""

from __future__ import annotations

import sys

import click

from sertune.cli.compare import compare
from sertune.cli.data import corpus, prepare
from sertune.cli.demo import demo
from sertune.cli.explain import explain
from sertune.cli.predict import predict
from sertune.cli.recipe import recipe
from sertune.cli.report import report
from sertune.cli.sweep import sweep
from sertune.cli.train import train
from sertune.cli.tune import tune

PIPELINE = (corpus, prepare, train, tune, sweep, report, compare, predict, explain, recipe, demo)


class PipelineGroup(click.Group):
    """Lists commands in pipeline order, each with its whole first docstring line."""

    def list_commands(self, ctx):
        return list(self.commands)

    def format_commands(self, ctx, formatter):
        rows = [(name, cmd.help.splitlines()[0]) for name, cmd in self.commands.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="sertune")
def cli():
    """Multi-vector attention LSTM speech emotion recognition: tune and seed-sweep on Ray."""


for command in PIPELINE:
    cli.add_command(command)


def main():
    try:
        cli(prog_name="sertune")
    except Exception as e:
        if isinstance(e, OSError) and "AWS Error" in str(e):  # storage failing where no location was at hand
            from sertune.fsutil import reason

            click.echo(f"Error: {reason(e)}", err=True)
            sys.exit(9)
        ray_exceptions = sys.modules.get("ray.exceptions")  # only loaded if a command used Ray
        if ray_exceptions is None or not isinstance(e, ray_exceptions.RayError):
            raise
        # a worker crash or a non-sertune error inside a task
        click.echo(f"Error: {type(e).__name__}: {str(e).strip().splitlines()[-1]}", err=True)
        sys.exit(8)
