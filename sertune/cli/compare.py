"""`sertune compare`: one configuration against others at one N_att (an ablation's table)."""

from __future__ import annotations

import click


@click.command()
@click.argument("reference")
@click.argument("variants", nargs=-1, required=True)
@click.option("--n-att", type=click.IntRange(min=1), default=None,
              help="the N_att compared  [default: the reference's, when it holds one]")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="also write compare.md, compare.csv and compare.json there (replaced as one set)")
def compare(reference, variants, n_att, out_dir):
    """Welch's test of each configuration against a reference at one N_att, with what differs.

    Each argument is [LABEL=]LOCATION: a results table (Parquet/CSV), an experiment directory, or
    a folder of `sertune train` runs (their result.json files).
    """
    from sertune import fsutil
    from sertune.preflight import check_writable
    from sertune.report import write_report
    from sertune.report.compare import FILES, compare as compare_arms, load_arm, markdown, render

    out = fsutil.normalize(out_dir) if out_dir else None
    if out:
        fsutil.check_bucket(out)
        check_writable(out, "--out")
    ref = load_arm(reference, n_att)
    n_att = int(ref.rows["n_att"].iloc[0])
    table = compare_arms([ref, *(load_arm(v, n_att) for v in variants)])
    click.echo(markdown(table, n_att), nl=False)
    if out:
        write_report(render(table, n_att), out, known=FILES)
        click.echo(f"Comparison written to {out}: {', '.join(FILES)}", err=True)
