"""`sertune report`: the paper's table, statistics and figures from a sweep's per-seed test UARs.

``summary`` computes (validating its input once), ``tables`` and ``figures`` render, and
``render_report``/``write_report`` here assemble the files and publish them.
"""

from __future__ import annotations

import json

import pandas as pd

from sertune import fsutil
from sertune.report.figures import kde_png, kde_selection, uar_vs_natt_png
from sertune.report.summary import checked, table
from sertune.report.tables import csv_table, latex_table, markdown_table, stats_document

FILES = ("table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png")


def render_report(df: pd.DataFrame, kde_n_att: list[int] | None = None, source: str | None = None,
                  summary: pd.DataFrame | None = None) -> dict[str, bytes]:
    """Every output file's bytes, by file name; nothing is written. Pass ``summary`` (from
    ``table(checked(df))``) when the rows are already validated and summarised."""
    if summary is None:
        df = checked(df, source or "results")
        summary = table(df)
    return {
        "table.md": markdown_table(summary).encode(),
        "table.tex": latex_table(summary).encode(),
        "table.csv": csv_table(summary).encode(),
        "stats.json": (json.dumps(stats_document(df, summary, source), indent=2, allow_nan=False) + "\n").encode(),
        "uar_kde.png": kde_png(df, kde_selection(summary, kde_n_att)),
        "uar_vs_natt.png": uar_vs_natt_png(df, summary),
    }


def write_report(files: dict[str, bytes], out_dir: str) -> dict[str, str]:
    """Write rendered files into out_dir (local or URI); return name -> location."""
    out_dir = fsutil.normalize(out_dir)
    written = {}
    for name, data in files.items():
        location = fsutil.join(out_dir, name)
        fsutil.write_bytes_atomic(location, data)
        written[name] = location
    return written
