"""`sertune report`: results -> the paper's table, statistics and figures."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--experiment-dir", default=None, metavar="DIR",
              help="experiment directory  [default: $SERTUNE_EXPERIMENT_DIR or ./sertune-experiment]")
@click.option("--results", "results_file", default=None, metavar="FILE",
              help="Parquet or CSV file with at least n_att, seed, uar, or a folder of `sertune train` runs  [default: the experiment's sweep results]")
@click.option("--out", "out_dir", default=None, metavar="DIR", help="output directory  [default: <experiment>/report]")
@click.option("--kde", "kde", multiple=True, type=click.IntRange(min=1), metavar="N_ATT",
              help="also draw this N_att in the KDE plot (repeatable); N_att = 1 and the largest are always drawn")
@click.option("--mlflow", "mlflow", default=None, envvar="SERTUNE_MLFLOW_URI", metavar="URI",
              help="attach the report files to an MLflow run named 'report' in the experiment's MLflow experiment  "
                   "[default: $SERTUNE_MLFLOW_URI, else off]")
@click.option("--margin", default=None, type=click.FloatRange(min=0, min_open=True), metavar="M",
              help="verdict on each Δ against N_att = 1: gain of at least M shown, excluded, or undecided "
                   "(two one-sided tests at 0.05; the speaker-clustered CI decides where predictions exist)")
@click.option("--predictions", "predictions_dir", default=None, metavar="DIR",
              help="the runs' per-utterance predictions, for the speaker-clustered bootstrap  "
                   "[default: <results stem>.predictions/ beside the results, where it exists]")
def report(experiment_dir, results_file, out_dir, kde, mlflow, margin, predictions_dir):
    """Table (Markdown, LaTeX, CSV), statistics and figures of test UAR against N_att; per-class recall;
    paired and speaker-clustered figures of each Δ, variance components, and a verdict (--margin)."""
    from sertune import fsutil, leaks, paths, results
    from sertune.errors import ResultsError
    from sertune.preflight import check_writable
    from sertune.report import class_notes, render_report, write_report
    from sertune.report.figures import kde_selection
    from sertune.report.summary import checked, report_warnings, table

    from sertune.cli.watch import check_mlflow
    from sertune.trials.mlflow_runs import tracking_uri

    exp = paths.experiment_dir(experiment_dir)
    if results_file is None:
        source = paths.sweep_results(exp)
        if not fsutil.exists(source):
            raise ResultsError(f"{source}: no sweep results yet (run the sweep, or pass --results FILE)")
    else:
        source = fsutil.normalize(results_file)
    out = fsutil.normalize(out_dir) if out_dir else paths.report_dir(exp)
    fsutil.check_bucket(out)
    check_writable(out, "--out" if out_dir else "--experiment-dir")

    # A folder is one of `sertune train` runs (each result.json a row), as compare reads it.
    rows = results.read_train_results(source) if fsutil.is_dir(source) else results.read_table(source)
    df = checked(rows, source)  # validated once, here
    mlflow, note = tracking_uri(exp, mlflow)  # where the experiment's runs are, if it remembers a place
    if note:
        click.echo(note, err=True)
    check_mlflow(mlflow)
    summary = table(df)
    try:
        kde_selection(summary, list(kde))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--kde") from None
    pred = _predictions(source, predictions_dir, df)
    files = render_report(df, list(kde), source, summary=summary, predictions=pred, margin=margin)
    write_report(files, out)
    click.echo(files["table.md"].decode(), nl=False)
    banner = leaks.banner(df)
    if banner:
        click.echo(f"Warning: {banner}", err=True)
    for w in report_warnings(summary):
        click.echo(f"Warning: {w}", err=True)
    if pred is None:
        click.echo("Note: no per-utterance predictions beside the results: speakers not resampled "
                   "(speaker-clustered CI skipped)", err=True)
    for note in class_notes(files):
        click.echo(f"Note: {note}", err=True)
    click.echo(f"Report written to {out}: {', '.join(files)}", err=True)
    if mlflow:
        click.echo(f"MLflow: report files attached to run {_to_mlflow(mlflow, exp, files, df)}", err=True)


def _predictions(source: str, given: str | None, df):
    """The predictions of the rows reported, or None where there are none to read: ``given`` (then
    they must be there), else the folder beside the results (a folder of `sertune train` runs holds
    its own). Every row must have its run's file."""
    import pandas as pd

    from sertune import fsutil, predictions
    from sertune.errors import ResultsError

    location = fsutil.normalize(given) if given else predictions.default_location(source)
    if given is None and not fsutil.exists(location):
        return None
    try:
        pred = predictions.read_predictions(location)
    except ResultsError as e:
        if given is None and location == source:
            return None  # `sertune train` runs from before predictions were kept
        raise click.BadParameter(str(e), param_hint="--predictions") if given else e
    rows = pd.MultiIndex.from_arrays([df["n_att"].astype(int), df["seed"].astype(int)])
    runs = pd.MultiIndex.from_arrays([pred["n_att"].astype(int), pred["seed"].astype(int)])
    missing = rows[~rows.isin(runs)]
    if len(missing):
        n_att, seed = missing[0]
        raise ResultsError(f"{location}: no predictions for the row n_att={n_att} seed={seed} of {source}")
    return pred[runs.isin(rows)]


def _to_mlflow(uri: str, exp: str, files: dict[str, bytes], df) -> str:
    import os
    import tempfile

    from sertune.trials.mlflow_runs import log_report
    from sertune.trials.tracking import experiment_name

    tags = {"store_hash": ",".join(sorted(set(df["store_hash"].astype(str)))) if "store_hash" in df else "",
            "code_version": ",".join(sorted(set(df["code_version"].astype(str)))) if "code_version" in df else ""}
    with tempfile.TemporaryDirectory() as d:  # the report may live on an object store: attach local copies
        local = []
        for name, data in files.items():
            local.append(os.path.join(d, name))
            with open(local[-1], "wb") as f:
                f.write(data)
        return log_report(uri, experiment_name(exp), local, tags, report_metrics(json.loads(files["stats.json"])))


def report_metrics(stats: dict) -> dict[str, float]:
    """The table's figures as MLflow metrics, grouped by N_att (``n_att_64/uar_mean``)."""
    found = {}
    for c in stats["configs"]:
        found.update({f"n_att_{c['n_att']}/{k}": c[k] for k in ("uar_mean", "uar_std", "n")})
    for c in stats["comparisons"]:
        found.update({f"n_att_{c['n_att']}/{k}": c.get(k) for k in ("diff", "ci_low", "ci_high", "p", "p_holm")})
    return {k: float(v) for k, v in found.items() if isinstance(v, (int, float)) and v == v}
