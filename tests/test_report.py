"""`sertune report`: table values, files, figures and error exits.

Expected statistics are computed here from the textbook formulas (numpy for moments, the
t CDF as an incomplete beta function), never by calling the code under test's scipy path.
"""

import json
import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.special import betainc

from sertune.cli.report import report as report_command
from sertune.report import figures, render_report
from sertune.report.summary import summarize

DATA = {
    1: [0.548, 0.556, 0.551, 0.559, 0.545],
    4: [0.553, 0.561, 0.557, 0.566, 0.550],
    64: [0.560, 0.552, 0.567, 0.571, 0.558, 0.563],
}
CSV_COLUMNS = [
    "model", "n_att", "n", "uar_mean", "uar_std", "uar_max",
    "t", "p", "p_holm", "hedges_g", "diff", "ci_low", "ci_high",
]  # fmt: skip
FILES = {"table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def frame(data: dict[int, list[float]]) -> pd.DataFrame:
    rows = [{"n_att": n, "seed": 100 + i, "uar": u} for n, us in data.items() for i, u in enumerate(us)]
    return pd.DataFrame(rows)


def two_sided_p(t, df):
    return float(betainc(df / 2, 0.5, df / (df + t * t)))


def t_quantile_975(df):
    lo, hi = 0.0, 1000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if two_sided_p(mid, df) > 0.05 else (lo, mid)
    return (lo + hi) / 2


def expected(a, b):
    a, b = np.asarray(a), np.asarray(b)
    na, nb = len(a), len(b)
    ssa, ssb = np.sum((a - a.mean()) ** 2), np.sum((b - b.mean()) ** 2)
    va, vb = ssa / (na - 1) / na, ssb / (nb - 1) / nb
    se = math.sqrt(va + vb)
    diff = b.mean() - a.mean()
    t = diff / se
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = t_quantile_975(df) * se
    g = diff / math.sqrt((ssa + ssb) / (na + nb - 2)) * (1 - 3 / (4 * (na + nb) - 9))
    return {
        "t": t, "p": two_sided_p(t, df), "hedges_g": g,
        "diff": diff, "ci_low": diff - half, "ci_high": diff + half,
    }  # fmt: skip


def run(args):
    return CliRunner().invoke(report_command, [str(a) for a in args])


@pytest.fixture
def results_parquet(tmp_path):
    path = tmp_path / "results.parquet"
    frame(DATA).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One full CLI run on DATA, shared by the read-only checks below."""
    tmp = tmp_path_factory.mktemp("rendered")
    src = tmp / "results.parquet"
    frame(DATA).to_parquet(src, index=False)
    res = run(["--results", src, "--out", tmp / "out"])
    assert res.exit_code == 0, res.output
    return res, tmp / "out", src


# --------------------------------------------------------------------------- table values


def test_csv_statistics_match_formulas(rendered):
    _, out, _ = rendered
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert list(table["model"]) == ["LSTM-v-1", "LSTM-v-4", "LSTM-v-64"]
    assert list(table["n"]) == [5, 5, 6]
    for n_att, us in DATA.items():
        row = table[table["n_att"] == n_att].iloc[0]
        x = np.asarray(us)
        assert row["uar_mean"] == pytest.approx(x.sum() / len(x), abs=1e-12)
        assert row["uar_std"] == pytest.approx(math.sqrt(np.sum((x - x.mean()) ** 2) / (len(x) - 1)), rel=1e-9)
        assert row["uar_max"] == pytest.approx(max(us))
    base = table[table["n_att"] == 1].iloc[0]
    assert all(pd.isna(base[c]) for c in ["t", "p", "p_holm", "hedges_g", "diff", "ci_low", "ci_high"])

    exp = {n: expected(DATA[1], DATA[n]) for n in (4, 64)}
    for n in (4, 64):
        row = table[table["n_att"] == n].iloc[0]
        for col, value in exp[n].items():
            assert row[col] == pytest.approx(value, rel=1e-6), (n, col)
    # Holm over two comparisons: the smaller p doubled, the larger kept but not below it.
    p_small, p_large = sorted([exp[4]["p"], exp[64]["p"]])
    holm_small, holm_large = min(1, 2 * p_small), min(1, max(2 * p_small, p_large))
    by_p = table.set_index("p")["p_holm"]
    assert by_p[table["p"].dropna().min()] == pytest.approx(holm_small, rel=1e-6)
    assert by_p[table["p"].dropna().max()] == pytest.approx(holm_large, rel=1e-6)


def test_csv_column_order_exact_text(rendered):
    _, out, _ = rendered
    header = (out / "table.csv").read_text().splitlines()[0]
    assert header == ",".join(CSV_COLUMNS)
    baseline_line = (out / "table.csv").read_text().splitlines()[1]
    assert baseline_line.endswith(",,,,,,,")  # seven empty test columns for N_att = 1


def test_markdown_printed_and_best_marked(rendered):
    res, out, _ = rendered
    md = (out / "table.md").read_text()
    assert md in res.stdout
    main_table = md.split("\n\n")[0]  # the UAR table; the design table follows the legend
    rows = {line.split("|")[1].strip(): line for line in main_table.splitlines() if line.startswith("| LSTM-v-")}
    assert set(rows) == {"LSTM-v-1", "LSTM-v-4", "LSTM-v-64"}
    # LSTM-v-64 has the best mean (0.5618) and the best max (0.571); nobody else is bold.
    assert "**0.5618** ±" in rows["LSTM-v-64"] and "**0.5710**" in rows["LSTM-v-64"]
    assert "**" not in rows["LSTM-v-1"] + rows["LSTM-v-4"]
    assert rows["LSTM-v-1"].count("—") == 5
    tex = (out / "table.tex").read_text()
    assert tex.count("\\textbf{") == 2
    assert "\\textbf{0.5618}" in tex and "\\begin{tabular}" in tex and "\\bottomrule" in tex


def test_stats_json(rendered):
    _, out, src = rendered
    doc = json.loads((out / "stats.json").read_text())
    assert doc["input"].endswith(src.name)
    assert doc["n_rows"] == 16
    assert [c["model"] for c in doc["configs"]] == ["LSTM-v-1", "LSTM-v-4", "LSTM-v-64"]
    assert doc["configs"][2]["uar"] == DATA[64]
    assert doc["methods"]["holm_family_size"] == 2
    assert doc["warnings"] == []
    cmp64 = next(c for c in doc["comparisons"] if c["n_att"] == 64)
    exp = expected(DATA[1], DATA[64])
    assert cmp64["computable"] is True
    assert cmp64["t"] == pytest.approx(exp["t"], rel=1e-6)
    assert cmp64["df"] > 0


def test_trend_over_n_att(rendered):
    """The least-squares line of UAR on log2 N_att over all 16 runs, worked out with polyfit and
    the incomplete beta function, in stats.json and under the table."""
    _, out, _ = rendered
    x = np.log2([n for n, us in DATA.items() for _ in us])
    y = np.array([u for us in DATA.values() for u in us])
    slope, intercept = np.polyfit(x, y, 1)
    se = math.sqrt(np.sum((y - intercept - slope * x) ** 2) / (len(y) - 2) / np.sum((x - x.mean()) ** 2))
    trend = json.loads((out / "stats.json").read_text())["trend"]
    assert trend["slope_per_doubling"] == pytest.approx(slope) and trend["intercept"] == pytest.approx(intercept)
    assert trend["p"] == pytest.approx(two_sided_p(slope / se, len(y) - 2), rel=1e-6)
    assert (trend["n_runs"], trend["n_att_levels"]) == (16, 3)
    assert f"Trend over N_att: {slope:+.4f} UAR per doubling" in (out / "table.md").read_text()


def test_two_n_att_have_no_trend_line():
    files = render_report(frame({1: DATA[1], 64: DATA[64]}))
    assert "Trend" not in files["table.md"].decode()
    assert json.loads(files["stats.json"])["trend"] == {"computable": False,
                                                         "note": "2 N_att value(s); a trend needs at least 3"}


def test_pngs_exist_and_are_real_images(rendered):
    _, out, _ = rendered
    assert {p.name for p in out.iterdir()} == FILES
    for name in ("uar_kde.png", "uar_vs_natt.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) > 10_000, name  # a blank 600x400 PNG is far smaller
        img = mpimg.imread(out / name)
        assert img.shape[:2] == (400, 600)
        assert img[..., :3].std() > 0.05  # not a blank canvas


# --------------------------------------------------------------------------- inputs


def test_default_paths_from_experiment_dir(tmp_path):
    exp = tmp_path / "exp"
    (exp / "sweep").mkdir(parents=True)
    frame(DATA).to_parquet(exp / "sweep" / "results.parquet", index=False)
    res = run(["--experiment-dir", exp])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (exp / "report").iterdir()} == FILES


def test_missing_default_results_is_a_results_error(tmp_path):
    res = run(["--experiment-dir", tmp_path / "nothing-here"])
    assert res.exit_code == 5
    assert "results.parquet" in res.output and "--results" in res.output


def test_csv_input_gives_same_table(tmp_path, rendered):
    _, out_parquet, _ = rendered
    src = tmp_path / "any_name.csv"
    frame(DATA).sample(frac=1, random_state=3).to_csv(src, index=False)  # order must not matter
    res = run(["--results", src, "--out", tmp_path / "out"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "table.csv").read_text() == (out_parquet / "table.csv").read_text()


def test_extra_columns_are_ignored(tmp_path, rendered):
    res_plain, out_plain, _ = rendered
    df = frame(DATA).assign(val_uar=0.5, node="x", epochs=7)
    src = tmp_path / "r.csv"
    df.to_csv(src, index=False)
    res = run(["--results", src, "--out", tmp_path / "out"])
    assert res.exit_code == 0, res.output
    assert res.stdout == res_plain.stdout
    for name in ("table.md", "table.tex", "table.csv"):
        assert (tmp_path / "out" / name).read_text() == (out_plain / name).read_text(), name
    doc, plain = (json.loads((d / "stats.json").read_text()) for d in (tmp_path / "out", out_plain))
    assert doc["input"].endswith("r.csv") and {**doc, "input": None} == {**plain, "input": None}


# --------------------------------------------------------------------------- too few seeds


def test_single_seed_config_is_marked_not_computable(tmp_path):
    src = tmp_path / "r.csv"
    frame({**DATA, 8: [0.575]}).to_csv(src, index=False)
    out = tmp_path / "out"
    res = run(["--results", src, "--out", out])
    assert res.exit_code == 0, res.output
    assert "Warning: LSTM-v-8" in res.stderr and "not computable" in res.stderr
    assert "Warning" not in res.stdout

    row = next(line for line in (out / "table.md").read_text().splitlines() if line.startswith("| LSTM-v-8 "))
    assert "0.5750** ± n/c" in row and row.count("n/c") == 6
    assert "nan" not in (out / "table.md").read_text().lower()
    assert "nan" not in (out / "table.tex").read_text().lower()

    table = pd.read_csv(out / "table.csv")
    r8 = table[table["n_att"] == 8].iloc[0]
    assert r8["n"] == 1 and r8["uar_mean"] == pytest.approx(0.575)
    assert pd.isna(r8["uar_std"]) and pd.isna(r8["p"])
    # The one-seed config is not part of the Holm family: the others keep their values.
    exp = {n: expected(DATA[1], DATA[n])["p"] for n in (4, 64)}
    lo = min(exp.values())
    assert table.loc[table["p"] == table["p"].min(), "p_holm"].iloc[0] == pytest.approx(2 * lo, rel=1e-6)

    doc = json.loads((out / "stats.json").read_text())
    c8 = next(c for c in doc["comparisons"] if c["n_att"] == 8)
    assert c8["computable"] is False and c8["p"] is None and "fewer than 2 seeds" in c8["note"]
    assert doc["methods"]["holm_family_size"] == 2
    assert any("LSTM-v-8" in w for w in doc["warnings"])
    # Its one value is both the best mean and the best max, and is marked so.
    assert row.count("**0.5750**") == 2


def test_single_seed_baseline_makes_every_test_not_computable(tmp_path):
    src = tmp_path / "r.csv"
    frame({**DATA, 1: [0.55]}).to_csv(src, index=False)
    out = tmp_path / "out"
    res = run(["--results", src, "--out", out])
    assert res.exit_code == 0, res.output
    assert "Warning: LSTM-v-1" in res.stderr
    assert "Warning: LSTM-v-4" in res.stderr and "LSTM-v-1 has fewer than 2 seeds" in res.stderr
    table = pd.read_csv(out / "table.csv")
    assert table[["t", "p", "p_holm", "hedges_g"]].isna().all().all()
    assert (out / "uar_kde.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- errors


def assert_one_line_error(res, code, *needles):
    assert res.exit_code == code, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_no_baseline_rows(tmp_path):
    src = tmp_path / "r.parquet"
    frame({4: DATA[4], 64: DATA[64]}).to_parquet(src, index=False)
    out = tmp_path / "out"
    res = run(["--results", src, "--out", out])
    assert_one_line_error(res, 6, "N_att = 1", "4, 64")
    assert not out.exists()  # nothing written before the check


def test_missing_column(tmp_path):
    src = tmp_path / "r.csv"
    frame(DATA).drop(columns="uar").to_csv(src, index=False)
    assert_one_line_error(run(["--results", src, "--out", tmp_path / "o"]), 5, "missing column", "uar")


def test_non_numeric_uar_names_row_and_column(tmp_path):
    src = tmp_path / "r.csv"
    df = frame(DATA).astype({"uar": object})
    df.loc[2, "uar"] = "oops"
    df.to_csv(src, index=False)
    assert_one_line_error(run(["--results", src, "--out", tmp_path / "o"]), 5, "row 2", "uar", "oops")


def test_garbage_bytes(tmp_path):
    src = tmp_path / "r.parquet"
    src.write_bytes(bytes(range(256)) * 8)
    assert_one_line_error(run(["--results", src, "--out", tmp_path / "o"]), 5, "Parquet")


def test_empty_table(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("n_att,seed,uar\n")
    assert_one_line_error(run(["--results", src, "--out", tmp_path / "o"]), 5, "no result rows")


def test_nonexistent_file(tmp_path):
    assert_one_line_error(run(["--results", tmp_path / "nope.csv"]), 5, "nope.csv")


def test_unknown_kde_n_att(results_parquet, tmp_path):
    res = run(["--results", results_parquet, "--out", tmp_path / "o", "--kde", "3"])
    assert res.exit_code == 2
    assert "N_att = 3" in res.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- figures


def legend_texts(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_kde_default_and_extra_curves(results_parquet, tmp_path):
    df = frame(DATA)
    summary = summarize(df)
    assert figures.kde_selection(summary) == [1, 64]
    assert figures.kde_selection(summary, [4, 1]) == [1, 64, 4]
    texts = legend_texts(figures.kde_figure(df, [1, 64, 4]))
    assert [t.split(" ")[0] for t in texts] == ["LSTM-v-1", "LSTM-v-64", "LSTM-v-4"]
    res = run(["--results", results_parquet, "--out", tmp_path / "o", "--kde", "4"])
    assert res.exit_code == 0, res.output


def test_kde_falls_back_for_constant_group():
    df = frame({1: DATA[1], 64: [0.56, 0.56, 0.56]})
    texts = legend_texts(figures.kde_figure(df, [1, 64]))
    assert "no KDE" not in texts[0]
    assert "LSTM-v-64" in texts[1] and "no KDE" in texts[1]
    assert figures.kde_png(df, [1, 64])[:8] == PNG_MAGIC


def test_uar_vs_natt_log2_ticks():
    df = frame(DATA)
    fig = figures.uar_vs_natt_figure(df, summarize(df))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8", "16", "32", "64"]
    assert list(ax.get_xticks()) == [1, 2, 4, 8, 16, 32, 64]


def test_summarize_sorted_and_columns():
    shuffled = frame(DATA).sample(frac=1, random_state=0)
    s = summarize(shuffled)
    assert list(s["n_att"]) == [1, 4, 64]
    assert list(s.columns[: len(CSV_COLUMNS)]) == CSV_COLUMNS


def test_uar_vs_natt_marks_single_seed_config():
    df = frame({**DATA, 8: [0.575]})
    texts = legend_texts(figures.uar_vs_natt_figure(df, summarize(df)))
    assert "< 2 seeds: no std" in texts
    texts = legend_texts(figures.uar_vs_natt_figure(frame(DATA), summarize(frame(DATA))))
    assert "< 2 seeds: no std" not in texts and "mean ± std" in texts
