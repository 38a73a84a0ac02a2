"""The tune's search picture (EXP/tune/search.png): ASHA's rungs, the knob of the third panel,
and every trial drawn once in the order the trials ran."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sertune.report.search import asha_rungs, pick_knob, search_figure


def test_asha_rungs_are_grace_times_powers_of_the_reduction_factor():
    assert asha_rungs(10, 3, 100) == [10, 30, 90]
    assert asha_rungs(1, 2, 4) == [1, 2]
    assert asha_rungs(5, 2, 5) == []


def _search():
    """Three trials: a (full, 4 epochs), b (stopped at 1), c (full, best); started c, a, b."""
    rows = []
    for tid, start, uars in (("a", 20, [0.3, 0.35, 0.35, 0.4]), ("b", 30, [0.2]), ("c", 10, [0.3, 0.4, 0.5, 0.5])):
        rows += [{"trial_id": tid, "epoch": e + 1, "val_uar": u, "best_val_uar": u, "timestamp": start + e}
                 for e, u in enumerate(uars)]
    trials = pd.DataFrame({"trial_id": ["a", "b", "c"], "config/lr": [1e-4, 1e-2, 1e-3],
                           "config/batch_size": [16, 32, 16], "config/dropout": [0.1, 0.2, 0.3]})
    return pd.DataFrame(rows), trials


def test_pick_knob_takes_the_most_important_numeric_knob_else_lr():
    _, trials = _search()
    assert pick_knob({"dropout": 0.7, "lr": 0.3}, trials) == ("dropout", "the most important knob")
    assert pick_knob(None, trials) == ("lr", "importances not computable")
    assert pick_knob(None, trials.assign(**{"config/lr": 1e-3})) == (None, "")


def test_the_search_in_the_order_the_trials_ran():
    curves, trials = _search()
    fig = search_figure(curves, trials, "c", 4, [1, 2], "lr", "the most important knob")
    curves_ax, order_ax, knob_ax = fig.axes
    assert "3 trials (2 full budget" in curves_ax.get_title()
    assert [line.get_xdata()[0] for line in curves_ax.get_lines() if line.get_linestyle() == ":"] == [1, 2]
    full, stopped = order_ax.collections[1].get_offsets(), order_ax.collections[0].get_offsets()
    # Curves without trial numbers (a tune begun before them): numbered from 0 as they ran.
    assert np.asarray(full).tolist() == [[0, 0.5], [1, 0.4]]  # c ran first, then a
    assert np.asarray(stopped).tolist() == [[2, 0.2]]
    running = [line for line in order_ax.get_lines() if line.get_label() == "best full-budget so far"][0]
    assert list(running.get_ydata()) == [0.5, 0.5, 0.5]  # a stopped trial does not lower it
    assert knob_ax.get_xscale() == "log" and knob_ax.get_title() == "against lr (the most important knob)"
    assert sorted(np.concatenate([c.get_offsets()[:, 0] for c in knob_ax.collections]).tolist()) == [1e-4, 1e-3, 1e-2]
