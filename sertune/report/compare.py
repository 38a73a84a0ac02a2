"""`sertune compare`: one configuration against others, at one N_att -- an ablation's table.

Each arm is the per-seed test UARs of one configuration: a sweep's results table, an experiment
directory, or a folder of `sertune train` runs. Every variant is tested against the reference
with Welch's t-test (as the report does), and the table says what differs from the reference,
read from the rows' own configurations and store hashes rather than from labels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sertune import fsutil, leaks, paths, results
from sertune.config import RUNTIME_FIELDS
from sertune.errors import ConfigError, ResultsError
from sertune.experiment import differences
from sertune.report.stats import NotComputable, welch
from sertune.report.tables import _pval as pvalue

FILES = ("compare.md", "compare.csv", "compare.json")
# What a row's configuration may vary in within one arm: the arm is its seeds.
PER_RUN = ("seed", "n_att", *RUNTIME_FIELDS)
COLUMNS = ("label", "differs", "n", "uar_mean", "uar_std", "diff", "ci_low", "ci_high", "p", "code_versions", "leaks",
           "source")


@dataclass(frozen=True)
class Arm:
    label: str
    source: str
    rows: pd.DataFrame  # results rows of one N_att

    @property
    def uar(self) -> np.ndarray:
        return self.rows.sort_values("seed")["uar"].to_numpy(dtype=float)


def parse_spec(spec: str) -> tuple[str, str]:
    """``LABEL=LOCATION`` or ``LOCATION`` (labelled by its last path part); a URI's query may
    hold '=' too, so only a prefix without '/' or ':' is a label."""
    head, sep, tail = spec.partition("=")
    if sep and head and "/" not in head and ":" not in head:
        return head, tail
    name = fsutil.split_query(spec)[0].rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name, spec


def read_arm_rows(location: str) -> pd.DataFrame:
    """A results table (Parquet/CSV), an experiment directory (its sweep results), or a folder
    of `sertune train` runs."""
    location = fsutil.normalize(location)
    if not fsutil.exists(location):
        raise ResultsError(f"{location}: no such results file or folder")
    if not fsutil.is_dir(location):
        return results.read_results(location)
    sweep = paths.sweep_results(location)
    return results.read_results(sweep) if fsutil.exists(sweep) else results.read_train_results(location)


def load_arm(spec: str, n_att: int | None) -> Arm:
    label, location = parse_spec(spec)
    rows = read_arm_rows(location)
    present = sorted(int(n) for n in rows["n_att"].unique())
    if n_att is None:
        if len(present) > 1:
            raise ConfigError(f"{location}: holds N_att {', '.join(map(str, present))}; choose one with --n-att")
        n_att = present[0]
    rows = rows[rows["n_att"] == n_att]
    if rows.empty:
        raise ResultsError(f"{location}: no rows with N_att = {n_att} (it holds {', '.join(map(str, present))})")
    _check_one_configuration(rows, location)
    return Arm(label, location, rows.reset_index(drop=True))


def _configs(rows: pd.DataFrame) -> list[dict]:
    """What defines the arm, per row: the training configuration less PER_RUN, and the store."""
    return [{**{k: v for k, v in cfg.items() if k not in PER_RUN}, "store": store}
            for cfg, store in zip(results.configs(rows), rows["store_hash"])]


def _check_one_configuration(rows: pd.DataFrame, location: str) -> None:
    first, *others = _configs(rows)
    for seed, cfg in zip(rows["seed"].iloc[1:], others):
        diff = differences(first, cfg)
        if diff:
            raise ResultsError(f"{location}: seed {seed} differs from seed {rows.iloc[0]['seed']} in "
                               f"{', '.join(diff)}: not one configuration")


def _features(rows: pd.DataFrame) -> dict:
    """The first row's store feature parameters as it recorded them ({} in rows from before they were)."""
    recorded = results.features(rows.iloc[:1])[0] if "features" in rows else {}
    return {f"features.{k}": v for k, v in recorded.items()}


def what_differs(reference: Arm, arm: Arm) -> str:
    """``name: reference value → this value`` for each field of the configuration, then, where
    the stores differ, each feature parameter that does (when both rows recorded them) and the
    store hashes: equal parameters with other hashes mean another corpus or another build."""
    a, b = _configs(reference.rows.iloc[:1])[0], _configs(arm.rows.iloc[:1])[0]
    keys = differences(a, b)
    if "store" in keys:
        fa, fb = _features(reference.rows), _features(arm.rows)
        if fa and fb:
            a, b = {**a, **fa}, {**b, **fb}
            keys = [k for k in keys if k != "store"] + differences(fa, fb) + ["store"]
    return "; ".join(f"{key}: {_show(a.get(key))} → {_show(b.get(key))}" for key in keys)


def _show(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str) and len(v) > 16:
        return v[:12] + "…"
    if isinstance(v, float) and len(str(v)) > 8:
        return f"{v:.4g}"  # a tuned value, 0.2818382299508379: four digits tell arms apart
    return str(v)


def check_one_corpus(arms: list[Arm]) -> None:
    """Arms of two corpora (or two label sets: two manifests are both "manifest") are two
    studies: a difference of their UARs is not a comparison."""
    corpora = {arm.label: sorted({f"{c} ({', '.join(k)})" for c, k in zip(arm.rows["corpus"], results.classes(arm.rows))})
               for arm in arms}
    seen = sorted({c for cs in corpora.values() for c in cs})
    if len(seen) > 1:
        shown = "; ".join(f"{label}: {' / '.join(cs)}" for label, cs in corpora.items())
        raise ResultsError(f"arms of {len(seen)} corpora or label sets ({shown}): compare arms of one corpus")


def compare(arms: list[Arm]) -> pd.DataFrame:
    """One row per arm, the reference first: n, mean, std (ddof 1), and for the variants Welch's
    difference from the reference with its 95 % CI and p."""
    check_one_corpus(arms)
    ref = arms[0]
    rows = []
    for arm in arms:
        x = arm.uar
        row = {"label": arm.label, "differs": "" if arm is ref else what_differs(ref, arm) or "nothing",
               "n": len(x), "uar_mean": float(x.mean()),
               "uar_std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
               "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
               "code_versions": ",".join(sorted(set(arm.rows["code_version"].astype(str)))),
               "leaks": "; ".join(sorted(set(leaks.of_rows(arm.rows)) - {""})), "source": arm.source}
        if arm is not ref:
            row["diff"] = float(x.mean() - ref.uar.mean())
            try:
                w = welch(ref.uar, x)
                row.update(ci_low=w.ci_low, ci_high=w.ci_high, p=w.p)
            except NotComputable:
                pass  # fewer than 2 seeds on a side: the difference stands alone, without a test
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")


def banner(table: pd.DataFrame) -> str | None:
    """One line above a comparison that holds arms made with the authors' leaks."""
    leaky = table[table["leaks"] != ""]
    if leaky.empty:
        return None
    honest = "" if len(leaky) == len(table) else f"; compared with honest arm(s) ({', '.join(table.loc[table['leaks'] == '', 'label'])}): not like for like"
    return f"LEAK: arm(s) {', '.join(f'{r.label} ({r.leaks})' for r in leaky.itertuples())}{honest}"


def markdown(table: pd.DataFrame, n_att: int) -> str:
    note = banner(table)
    lines = ([f"> **{note}**", ""] if note else []) + [f"| configuration (N_att = {n_att}) | differs from {table.iloc[0]['label']} | seeds | test UAR (ddof 1) "
             "| Δ [Welch 95 % CI] | p | code |",
             "|---|---|---|---|---|---|---|"]
    for i, r in table.iterrows():
        if i == 0:
            delta, p = "—", "—"
        elif math.isnan(r["ci_low"]):
            delta, p = f"{r['diff']:+.4f} (no test: < 2 seeds)", "—"
        else:
            delta, p = f"{r['diff']:+.4f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]", pvalue(r["p"])
        lines.append(f"| {r['label']} | {r['differs'] or 'reference'} | {r['n']} | {_pm(r['uar_mean'], r['uar_std'])} "
                     f"| {delta} | {p} | {r['code_versions']} |")
    return "\n".join(lines) + "\n"


def render(table: pd.DataFrame, n_att: int) -> dict[str, bytes]:
    doc = {"n_att": n_att, "reference": table.iloc[0]["label"], "confidence": 0.95, "test": "Welch two-sided",
           "arms": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                    for r in table.to_dict("records")]}
    doc["leaks"] = banner(table)
    return {"compare.md": markdown(table, n_att).encode(),
            "compare.csv": table.to_csv(index=False).encode(),
            "compare.json": (json.dumps(doc, indent=2) + "\n").encode()}
