"""`sertune compare`: real `sertune train` runs on the synthetic store, compared as folders, as a
results table and as an experiment directory; the statistics checked against scipy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from click.testing import CliRunner

from sertune import results
from sertune.cli import cli
from sertune.report.compare import parse_spec


def _train(store: str, out: Path, seed: int, *flags: str) -> float:
    r = CliRunner().invoke(cli, ["train", "--store", store, "--out", str(out), "--seed", str(seed),
                                 "--epochs", "2", "--n-att", "2", *flags])
    assert r.exit_code == 0, r.output
    return json.loads((out / "result.json").read_text())["uar"]


@pytest.fixture(scope="module")
def arms(synth_store, tmp_path_factory) -> tuple[Path, dict[str, list[float]]]:
    """Two configurations, two seeds each: the reference and one with BatchNorm on the context."""
    root = tmp_path_factory.mktemp("arms")
    uars = {"ref": [], "bn": []}
    for seed in (0, 1):
        uars["ref"].append(_train(synth_store, root / "ref" / f"seed{seed}", seed))
        uars["bn"].append(_train(synth_store, root / "bn" / f"seed{seed}", seed, "--context-norm"))
    return root, uars


def _compare(*args: str):
    return CliRunner().invoke(cli, ["compare", *args])


def test_compare_says_what_differs_and_tests_it_like_scipy(arms, tmp_path):
    root, uars = arms
    r = _compare(f"plain={root / 'ref'}", str(root / "bn"), "--out", str(tmp_path / "cmp"))
    assert r.exit_code == 0, r.output + r.stderr
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["n_att"] == 2 and doc["reference"] == "plain"
    ref, bn = doc["arms"]
    assert (ref["label"], bn["label"]) == ("plain", "bn")
    assert bn["differs"] == "context_norm: false → true"  # read from the rows' configurations, nothing else
    assert ref["n"] == bn["n"] == 2
    assert ref["uar_mean"] == pytest.approx(np.mean(uars["ref"])) and ref["uar_std"] == pytest.approx(np.std(uars["ref"], ddof=1))
    assert bn["diff"] == pytest.approx(np.mean(uars["bn"]) - np.mean(uars["ref"]))
    if np.std(uars["ref"]) + np.std(uars["bn"]) > 0:
        assert bn["p"] == pytest.approx(sps.ttest_ind(uars["bn"], uars["ref"], equal_var=False).pvalue)
    assert "| plain | reference | 2 |" in r.stdout and "| bn | context_norm: false → true | 2 |" in r.stdout
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["compare.csv", "compare.json", "compare.md"]
    assert len(pd.read_csv(tmp_path / "cmp" / "compare.csv")) == 2


def test_a_table_and_an_experiment_directory_are_arms_too(arms, tmp_path):
    root, _ = arms
    rows = results.read_train_results(str(root / "ref"))
    results.write_results(rows, str(tmp_path / "ref.parquet"))
    (tmp_path / "exp" / "sweep").mkdir(parents=True)
    results.write_results(results.read_train_results(str(root / "bn")), str(tmp_path / "exp" / "sweep" / "results.parquet"))
    r = _compare(str(tmp_path / "ref.parquet"), f"bn={tmp_path / 'exp'}", str(root / "ref"))
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stdout.splitlines()
    assert lines[2].startswith("| ref | reference | 2 |")
    assert lines[3].startswith("| bn | context_norm: false → true | 2 |")
    assert lines[4].startswith("| ref | nothing | 2 |") and "| +0.0000 [" in lines[4]  # the same runs again


def test_refusals_name_the_location_or_option(arms, tmp_path):
    root, _ = arms
    mixed = tmp_path / "mixed"
    for seed, src in ((0, "ref"), (1, "bn")):  # two configurations under one folder
        (mixed / f"s{seed}").mkdir(parents=True)
        (mixed / f"s{seed}" / "result.json").write_text((root / src / f"seed{seed}" / "result.json").read_text())
    r = _compare(str(mixed), str(root / "bn"))
    assert r.exit_code == 5 and f"{mixed}: seed 1 differs from seed 0 in context_norm: not one configuration" in r.stderr

    two = results.read_train_results(str(root / "ref"))
    two.loc[1, "n_att"] = 4
    results.write_results(two, str(tmp_path / "two.parquet"))
    r = _compare(str(tmp_path / "two.parquet"), str(root / "bn"))
    assert r.exit_code == 2 and "holds N_att 2, 4; choose one with --n-att" in r.stderr
    r = _compare(str(tmp_path / "two.parquet"), str(root / "bn"), "--n-att", "4")
    assert r.exit_code == 5 and "no rows with N_att = 4 (it holds 2)" in r.stderr

    r = _compare(str(root / "ref"), str(tmp_path / "missing"))
    assert r.exit_code == 5 and f"{tmp_path / 'missing'}: no such results file or folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = _compare(str(root / "ref"), str(tmp_path / "empty"))
    assert r.exit_code == 5 and "no result.json of `sertune train` in this folder" in r.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    r = _compare(str(root / "ref"), str(root / "bn"), "--out", str(tmp_path / "busy"))
    assert r.exit_code == 2 and "holds 'notes.txt', which is not a report file" in r.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    r = _compare(str(root / "ref"))
    assert r.exit_code == 2 and "Missing argument 'VARIANTS...'" in r.stderr


def test_labels_and_uris():
    assert parse_spec("no-bn=/runs/ablation/no-bn") == ("no-bn", "/runs/ablation/no-bn")
    assert parse_spec("/runs/ablation/no-bn/") == ("no-bn", "/runs/ablation/no-bn/")
    assert parse_spec("runs/results.parquet") == ("results", "runs/results.parquet")
    uri = "s3://bucket/exp/sweep/results.parquet?endpoint_override=127.0.0.1:9000&scheme=http"
    assert parse_spec(uri) == ("results", uri)
    assert parse_spec(f"v64={uri}") == ("v64", uri)


def test_another_store_is_shown_by_its_feature_parameters(arms):
    """Arms on two stores: the table names the feature parameters that differ (the rows record
    their store's), then the hashes; rows from before features were recorded show the hash only."""
    from sertune.report.compare import Arm, what_differs

    root, _ = arms
    ref = results.read_train_results(str(root / "ref"))
    assert ref.features[0]["hop_ms"] == 10.0  # what the synthetic store was built with
    other = ref.assign(store_hash="0123456789abcdef",
                       features=[{**f, "hop_ms": 20.0, "n_mels": 40} for f in results.features(ref)])
    shown = what_differs(Arm("ref", "a", ref), Arm("hop20", "b", other))
    assert shown == f"features.hop_ms: 10.0 → 20.0; features.n_mels: 64 → 40; store: {ref.store_hash[0]} → 0123456789abcdef"
    same_features = ref.assign(store_hash="0123456789abcdef")  # another corpus or build, same parameters
    assert what_differs(Arm("ref", "a", ref), Arm("c", "c", same_features)) == f"store: {ref.store_hash[0]} → 0123456789abcdef"
    tuned = ref.assign(config=[{**c, "lr": 0.00788923903316778} for c in results.configs(ref)])
    assert what_differs(Arm("ref", "a", ref), Arm("t", "t", tuned)).endswith(" → 0.007889")
    older = other.assign(features=None)  # not recorded
    assert what_differs(Arm("ref", "a", ref), Arm("old", "d", older)) == f"store: {ref.store_hash[0]} → 0123456789abcdef"
