"""`sertune predict`: label audio files with a trained model."""

from __future__ import annotations

import sys

import click


def model_options(f):
    """--model and its choices within an experiment directory (predict and explain)."""
    f = click.option("--seed", "seeds", type=click.IntRange(min=0), multiple=True,
                     help="seed of a sweep model (repeatable)  [default: every seed the sweep kept]")(f)
    f = click.option("--n-att", type=click.IntRange(min=1), default=None,
                     help="N_att of a sweep model (with an experiment directory as --model)")(f)
    f = click.option("--store", default=None,
                     help="the model's store, if it moved  [default: the store recorded in the model]")(f)
    f = click.option("--model", required=True, metavar="PATH",
                     help="model.pt, a `sertune train` output folder, or an experiment directory (with --n-att)")(f)
    return f


@click.command()
@model_options
@click.option("--ensemble", is_flag=True, help="average the probabilities of every fold and seed given")
@click.option("--out", default=None, metavar="FILE", help="also write the predictions as .csv or .json")
@click.argument("audio", nargs=-1, required=True)
def predict(model, store, n_att, seeds, ensemble, out, audio):
    """Label WAV/FLAC files (or folders) with a trained model: emotion and probabilities per file."""
    from sertune import fsutil
    from sertune.errors import ConfigError, CorpusError
    from sertune.insight.models import check_store, resolve_models
    from sertune.insight.predict import predict as run

    if out and not out.lower().endswith((".csv", ".json")):
        raise click.BadParameter(f"{out}: must end in .csv or .json", param_hint="--out")
    models = resolve_models(model, n_att, seeds)
    if len(models) > 1 and not ensemble:
        raise ConfigError(f"--model {model}: {len(models)} models ({', '.join(m.name for m in models)}); "
                          "pass --ensemble to average them, or choose one --seed")
    if check_store(models, store) is None:
        click.echo(f"Note: the model's store {models[0].record['store']} is not readable; "
                   "using the feature parameters recorded in the model", err=True)
    result = run(models, list(audio))
    df = result.frame()
    if len(df):
        click.echo(df.to_string(index=False, float_format=lambda p: f"{p:.3f}"))
    if out:
        data = df.to_csv(index=False) if out.lower().endswith(".csv") else df.to_json(orient="records", indent=2)
        fsutil.write_bytes_atomic(fsutil.normalize(out), data.encode())
    for e in result.errors:
        click.echo(f"Error: {e}", err=True)
    if result.errors:
        click.echo(f"{len(result.errors)} input(s) could not be predicted, {len(df)} were", err=True)
        sys.exit(CorpusError.exit_code)
