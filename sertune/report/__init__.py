"""`sertune report`: the paper's table, statistics and figures from a sweep's per-seed test UARs,
plus per-class recall and confusion matrices where the rows carry them.

``summary`` and ``classes`` compute (validating their input once), ``tables`` and ``figures``
render, and ``render_report``/``write_report`` here assemble the files and publish them as one set.
"""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pyarrow.fs as pafs

from sertune import fsutil, leaks
from sertune.results import with_classes
from sertune.errors import ConfigError, SertuneError
from sertune.report.evidence import METHODS as EVIDENCE_METHODS
from sertune.report.evidence import evidence
from sertune.report.evidence import markdown as evidence_markdown
from sertune.report.classes import confusion_sums, label_set, recall_table
from sertune.report.figures import confusion_png, kde_png, kde_selection, uar_vs_natt_png
from sertune.report.summary import BASELINE, checked, table
from sertune.report.tables import (class_csv, class_document, class_latex, class_markdown, csv_table, latex_table,
                                   markdown_table, stats_document)
from sertune.report.trend import grid_trend, trend_document

FILES = ("table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png")
CLASS_FILES = ("per_class.md", "per_class.tex", "per_class.csv", "confusion.png")


def confusion_selection(summary: pd.DataFrame) -> list[int]:
    """N_att = 1 beside the best N_att by mean UAR (just N_att = 1 when it is the best)."""
    best = int(summary.loc[summary["uar_mean"].idxmax(), "n_att"])
    return list(dict.fromkeys([BASELINE, best]))


def render_report(df: pd.DataFrame, kde_n_att: list[int] | None = None, source: str | None = None,
                  summary: pd.DataFrame | None = None, predictions: pd.DataFrame | None = None,
                  margin: float | None = None) -> dict[str, bytes]:
    """Every output file's bytes, by file name; nothing is written. Pass ``summary`` (from
    ``table(checked(df))``) when the rows are already validated and summarised; ``predictions``
    (the runs' per-utterance table) for the speaker-clustered figures; ``margin`` for the verdict."""
    if summary is None:
        df = checked(df, source or "results")
        summary = table(df)
    df = with_classes(df)  # a results/1-2 table's recall_<emotion> columns: RAVDESS's classes
    labels = label_set(df, source or "results")  # rows of two corpora are refused here
    classes = recall_table(df, labels, source or "results")
    sums = confusion_sums(df, labels, source or "results")
    picked = confusion_selection(summary)
    trend = grid_trend(df)
    leak = leaks.banner(df)
    beyond = evidence(df, predictions, margin)
    stats = stats_document(df, summary, source)
    stats["evidence"] = beyond
    stats["leaks"] = leak
    stats["methods"]["evidence"] = EVIDENCE_METHODS
    stats["trend"] = trend_document(*trend)
    stats["per_class"] = class_document(classes, sums, picked if sums is not None else [], labels)
    files = {
        "table.md": ((f"> **{leak}**\n\n" if leak else "")
                     + markdown_table(summary, trend, evidence_markdown(beyond, summary))).encode(),
        "table.tex": latex_table(summary).encode(),
        "table.csv": csv_table(summary).encode(),
        "stats.json": (json.dumps(stats, indent=2, allow_nan=False) + "\n").encode(),
        "uar_kde.png": kde_png(df, kde_selection(summary, kde_n_att)),
        "uar_vs_natt.png": uar_vs_natt_png(df, summary, trend[0]),
    }
    if classes is not None:
        files.update({"per_class.md": class_markdown(classes, labels).encode(),
                      "per_class.tex": class_latex(classes, labels).encode(),
                      "per_class.csv": class_csv(classes).encode()})
    if sums is not None:
        files["confusion.png"] = confusion_png(sums, picked, labels)
    return files


def class_notes(files: dict[str, bytes]) -> list[str]:
    """What a table without per-class columns leaves out, for the user."""
    notes = []
    if "per_class.md" not in files:
        notes.append("no per-class recall (classes and recall columns): per-class recall table skipped")
    if "confusion.png" not in files:
        notes.append("no confusion column: confusion.png skipped")
    return notes


def write_report(files: dict[str, bytes], out_dir: str, known: tuple[str, ...] = FILES + CLASS_FILES) -> dict[str, str]:
    """Publish the rendered files as one set in out_dir (local or URI); return name -> location.

    Every file is written to a staging folder first; only when all are there does the set
    replace the old one. Locally the swap is two renames of whole folders, so a reader sees the
    old set or the new one; on object stores, which have no folder rename, files are moved one
    by one after staging, so a failed write (a full disk, a denied object) still leaves the old
    set untouched. Report files of an older set that this one does not have are removed with it.
    ``known``: the names such a folder may hold (a folder with anything else is refused).
    """
    out_dir = fsutil.normalize(out_dir)
    _check_replaceable(out_dir, set(known))
    # Paths, not URIs, from here: a URI may end in a query (?endpoint_override=...).
    fs, out_path = fsutil.resolve(out_dir)
    staging = f"{out_path.rstrip('/')}.staging-{uuid.uuid4().hex[:8]}"
    try:
        fs.create_dir(staging, recursive=True)
        for name, data in files.items():
            with fs.open_output_stream(f"{staging}/{name}") as f:
                f.write(data)
        if fsutil.is_uri(out_dir):
            _publish_by_files(fs, staging, out_path, files)
        else:
            _swap_folders(fs, staging, out_path)
    except OSError as e:
        raise SertuneError(f"{out_dir}: cannot write the report ({e.strerror or e}); "
                           "the previous report there is unchanged") from None
    finally:
        if fs.get_file_info(staging).type == pafs.FileType.Directory:
            fs.delete_dir(staging)
    return {name: fsutil.join(out_dir, name) for name in files}


def _entries(location: str) -> list[pafs.FileInfo]:
    fs, path = fsutil.resolve(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    return fs.get_file_info(pafs.FileSelector(path, recursive=False))


def _check_replaceable(out_dir: str, known: set[str]) -> None:
    """The report folder is replaced as a whole: refuse one that holds anything but report files."""
    if fsutil.exists(out_dir) and not fsutil.is_dir(out_dir):
        raise ConfigError(f"--out {out_dir}: is a file, not a folder")
    foreign = [i.base_name for i in _entries(out_dir) if i.base_name not in known or i.type != pafs.FileType.File]
    if foreign:
        raise ConfigError(f"--out {out_dir}: holds {foreign[0]!r}, which is not a report file; "
                          "a report replaces its whole folder, so choose an empty or report-only folder")


def _swap_folders(fs, staging: str, out_path: str) -> None:
    old = None
    if fs.get_file_info(out_path).type != pafs.FileType.NotFound:
        old = f"{out_path}.old-{uuid.uuid4().hex[:8]}"
        fs.move(out_path, old)
    try:
        fs.move(staging, out_path)
    except OSError:
        if old:
            fs.move(old, out_path)  # put the old set back
        raise
    if old:
        fs.delete_dir(old)


def _publish_by_files(fs, staging: str, out_path: str, files: dict[str, bytes]) -> None:
    fs.create_dir(out_path, recursive=True)
    for info in fs.get_file_info(pafs.FileSelector(out_path, allow_not_found=True)):
        if info.base_name not in files and info.type == pafs.FileType.File:
            fs.delete_file(info.path)
    for name in files:
        fs.move(f"{staging}/{name}", f"{out_path}/{name}")
