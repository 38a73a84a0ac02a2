"""`sertune report`: results -> the paper's table, statistics and figures."""

from __future__ import annotations

import click


@click.command()
@click.option("--experiment-dir", default=None, metavar="DIR",
              help="experiment directory  [default: $SERTUNE_EXPERIMENT_DIR or ./sertune-experiment]")
@click.option("--results", "results_file", default=None, metavar="FILE",
              help="Parquet or CSV file with at least n_att, seed, uar  [default: the experiment's sweep results]")
@click.option("--out", "out_dir", default=None, metavar="DIR", help="output directory  [default: <experiment>/report]")
@click.option("--kde", "kde", multiple=True, type=click.IntRange(min=1), metavar="N_ATT",
              help="also draw this N_att in the KDE plot (repeatable); N_att = 1 and the largest are always drawn")
@click.option("--mlflow", "mlflow", default=None, envvar="SERTUNE_MLFLOW_URI", metavar="URI",
              help="attach the report files to an MLflow run named 'report' in the experiment's MLflow experiment  "
                   "[default: $SERTUNE_MLFLOW_URI, else off]")
def report(experiment_dir, results_file, out_dir, kde, mlflow):
    """Table (Markdown, LaTeX, CSV), statistics and figures of test UAR against N_att; per-class recall."""
    from sertune import fsutil, paths, results
    from sertune.errors import ResultsError
    from sertune.preflight import check_writable
    from sertune.report import class_notes, render_report, write_report
    from sertune.report.figures import kde_selection
    from sertune.report.summary import checked, report_warnings, table

    from sertune.cli.watch import check_mlflow

    check_mlflow(mlflow)
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

    df = checked(results.read_table(source), source)  # validated once, here
    summary = table(df)
    try:
        kde_selection(summary, list(kde))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--kde") from None
    files = render_report(df, list(kde), source, summary=summary)
    write_report(files, out)
    click.echo(files["table.md"].decode(), nl=False)
    for w in report_warnings(summary):
        click.echo(f"Warning: {w}", err=True)
    for note in class_notes(files):
        click.echo(f"Note: {note}", err=True)
    click.echo(f"Report written to {out}: {', '.join(files)}", err=True)
    if mlflow:
        click.echo(f"MLflow: report files attached to run {_to_mlflow(mlflow, exp, files, df)}", err=True)


def _to_mlflow(uri: str, exp: str, files: dict[str, bytes], df) -> str:
    import os
    import tempfile

    from sertune.trials.tracking import experiment_name, log_report

    tags = {"store_hash": ",".join(sorted(set(df["store_hash"].astype(str)))) if "store_hash" in df else "",
            "code_version": ",".join(sorted(set(df["code_version"].astype(str)))) if "code_version" in df else ""}
    with tempfile.TemporaryDirectory() as d:  # the report may live on an object store: attach local copies
        local = []
        for name, data in files.items():
            local.append(os.path.join(d, name))
            with open(local[-1], "wb") as f:
                f.write(data)
        return log_report(uri, experiment_name(exp), local, tags)
