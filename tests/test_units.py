"""Small pieces with exact answers: the learning-rate schedule, the bucketed batches, UAR with
a class absent, the default speaker split on RAVDESS, and a results table through CSV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sertune import results
from sertune.audio.corpus import scan
from sertune.config import TrainConfig
from sertune.store.load import load_store
from sertune.training.batching import BucketBatches
from sertune.training.loop import Training
from sertune.training.metrics import confusion_matrix, per_class_recall, uar
from sertune.training.schedule import cosine_restarts
from sertune.training.splits import make_splits

# ------------------------------------------------------------------ the cosine schedule


@pytest.mark.parametrize("total, cycles", [(12, 1), (12, 3), (40, 4)])
def test_cosine_restarts_matches_torch_where_the_period_is_whole(total, cycles):
    """Where the period is a whole number of steps, torch's CosineAnnealingWarmRestarts (eta_min
    0) is an independent reference."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=total // cycles, eta_min=0.0)
    for step in range(total):
        assert cosine_restarts(step, total, cycles) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), step
        opt.step()
        reference.step()


def test_cosine_restarts_whole_cycles_in_any_budget():
    """10 steps, 3 cycles: the period (3.33 steps) is not whole; still exactly 3 cycles, each
    starting at 1 and falling, and the last step close to 0."""
    values = [cosine_restarts(s, 10, 3) for s in range(10)]
    assert values[0] == 1.0 and all(0 < v <= 1 for v in values)
    restarts = [s for s in range(1, 10) if values[s] > values[s - 1]]
    assert restarts == [4, 7]  # the first steps past 10/3 and 20/3
    assert values[1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))
    assert values[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.7)))
    assert cosine_restarts(5, 10, 1) == pytest.approx(0.5)  # half way through one cycle
    assert cosine_restarts(99, 100, 1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))


def test_training_follows_the_schedule(synth_store):
    """The optimiser of a real run: after the first of two epochs in one cycle, half the base rate."""
    run = Training(TrainConfig(epochs=2, cycles=1, lr=0.004, seed=0, threads=1), load_store(synth_store))
    (fold,) = run.folds
    assert fold.opt.param_groups[0]["lr"] == pytest.approx(0.004)
    run.step()
    assert fold.opt.param_groups[0]["lr"] == pytest.approx(0.002, rel=1e-9)


# ------------------------------------------------------------------ bucketed batches


def test_bucket_batches_visit_every_index_once_per_epoch():
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(300, generator=gen)[:137]  # a subset, not 0..n-1; 137 is no multiple of 8
    lengths = torch.randint(50, 500, (300,), generator=gen)
    batches = BucketBatches(idx, lengths, batch_size=8, generator=torch.Generator().manual_seed(1), pool=4)
    epochs = [list(batches) for _ in range(3)]
    for epoch in epochs:
        assert len(epoch) == len(batches) == 18
        assert all(1 <= len(b) <= 8 for b in epoch)
        seen = torch.cat(epoch)
        assert sorted(seen.tolist()) == sorted(idx.tolist())  # each index once, nothing else
    assert len({tuple(torch.cat(e).tolist()) for e in epochs}) == 3, "two epochs ran in the same order"
    # Bucketing: batches are cut from length-sorted pools, so they waste less padding than the
    # same epoch cut at random would.
    pad = lambda bs: sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in bs)  # noqa: E731
    shuffled = torch.cat(epochs[0])[torch.randperm(137, generator=gen)].split(8)
    assert pad(epochs[0]) < pad(shuffled) / 2


def test_bucket_batches_same_seed_same_epochs():
    lengths = torch.arange(100) % 17 + 1
    a = BucketBatches(torch.arange(100), lengths, 16, torch.Generator().manual_seed(5))
    b = BucketBatches(torch.arange(100), lengths, 16, torch.Generator().manual_seed(5))
    for _ in range(2):
        assert [t.tolist() for t in a] == [t.tolist() for t in b]


# ------------------------------------------------------------------ UAR


def test_uar_with_a_class_absent():
    """Class 2 never occurs in the reference (a test split can lack one): its recall is
    undefined and it drops out of the mean; predictions of it still count as errors."""
    y_true = torch.tensor([0, 0, 0, 0, 1, 1, 3, 3, 3, 4, 5, 6, 7, 7])
    y_pred = torch.tensor([0, 0, 0, 2, 1, 2, 3, 3, 0, 4, 5, 6, 7, 7])
    cm = confusion_matrix(y_true, y_pred, 8)
    assert cm.sum() == 14 and cm[2].sum() == 0 and cm[:, 2].sum() == 2
    recall = per_class_recall(cm)
    assert math.isnan(recall[2])
    expected = [3 / 4, 1 / 2, None, 2 / 3, 1, 1, 1, 1]
    assert [None if math.isnan(r) else r for r in recall.tolist()] == pytest.approx(expected)
    assert uar(cm) == pytest.approx((3 / 4 + 1 / 2 + 2 / 3 + 4) / 7)
    assert uar(cm) != pytest.approx(sum(r for r in expected if r is not None) / 8)  # not averaged over 8


def test_uar_with_one_class_present():
    cm = confusion_matrix(torch.tensor([4, 4, 4, 4]), torch.tensor([4, 0, 4, 4]), 8)
    assert uar(cm) == pytest.approx(0.75)
    assert torch.isnan(per_class_recall(cm)).sum() == 7


# ------------------------------------------------------------------ the README's default split


@pytest.mark.realdata
def test_default_split_on_ravdess(real_16k):
    """README: test = actors 21-24, validation = 17-20, train = 1-16, 2 male + 2 female in each
    held-out group."""
    meta = scan(real_16k)
    (split,) = make_splits(meta, "speaker")
    assert split.train_actors == tuple(range(1, 17))
    assert split.val_actors == (17, 18, 19, 20) and split.test_actors == (21, 22, 23, 24)
    for part, actors in (("train", split.train_actors), ("val", split.val_actors), ("test", split.test_actors)):
        rows = meta.iloc[getattr(split, part)]
        assert sorted(rows.actor.unique()) == list(actors) and len(rows) == 60 * len(actors)
    for held_out in (split.val, split.test):
        genders = meta.iloc[held_out].drop_duplicates("actor").gender.value_counts().to_dict()
        assert genders == {"male": 2, "female": 2}
    assert not set(split.train) & set(split.val) and not set(split.val) & set(split.test)


# ------------------------------------------------------------------ results through CSV


def _row(n_att: int, seed: int, **changes) -> dict:
    row = {"n_att": n_att, "seed": seed, "uar": 0.4375, "fold_uar": "[0.4375]", "val_uar": 0.5, "best_epoch": 3, "epochs": 4,
           "corpus": "manifest", "classes": ["calm", "joy"], "recall": [0.5, float("nan")],
           "confusion": "[[1, 0], [0, 1]]", "config": TrainConfig(n_att=n_att, seed=seed).to_json(),
           "protocol": '{"split": "speaker"}', "store_hash": "0123456789abcdef", "features": '{"hop_ms": 10.0}', "code_version": "0.1.0+abc",
           "node": "host/127.0.0.2", "wall_time_s": 12.5, "finished_at": "2026-11-25T22:00:00+00:00"}
    return {**row, **changes}


def test_results_table_round_trips_through_csv(tmp_path):
    """Written as CSV and read back: the same table, types included (text columns stay text,
    an absent class's NaN recall stays NaN)."""
    df = pd.DataFrame([_row(2, 1), _row(1, 0, node="0123"), _row(1, 1, code_version="1.0")])
    path = str(tmp_path / "results.csv")
    results.write_results(df, path)
    back = results.read_results(path)
    expected = results.validate(df).sort_values(list(results.KEY)).reset_index(drop=True)
    pd.testing.assert_frame_equal(back[list(results.RESULT_COLUMNS)], expected[list(results.RESULT_COLUMNS)])
    assert back["node"].tolist() == ["0123", "host/127.0.0.2", "host/127.0.0.2"]  # not the number 123
    assert all(r[0] == 0.5 and np.isnan(r[1]) for r in back["recall"]) and back["classes"].tolist() == [["calm", "joy"]] * 3
    # Appending to the CSV keeps the first result of a pair and adds new pairs.
    results.append_rows(path, [_row(1, 0, uar=0.9), _row(4, 0)])
    again = results.read_results(path)
    assert sorted(zip(again.n_att, again.seed)) == [(1, 0), (1, 1), (2, 1), (4, 0)]
    assert again.set_index(["n_att", "seed"]).loc[(1, 0), "uar"] == 0.4375


def test_prepare_progress_is_ten_lines_in_a_log_and_nothing_when_off():
    """Not a terminal (a log, a job's output): a line at each tenth, not hundreds of bar redraws."""
    import io

    from sertune.store.prepare import progress_meter

    log = io.StringIO()
    with progress_meter(360, True, out=log) as update:
        for _ in range(359):
            update(1)
        assert len(log.getvalue().splitlines()) == 9  # 90 % reached at 324, 100 % not yet
        update(1)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("MFCC: 36/360 utterances (10 %, ")
    assert lines[-1].startswith("MFCC: 360/360 utterances (100 %, ")
    quiet = io.StringIO()
    with progress_meter(360, False, out=quiet) as update:
        update(360)
    assert quiet.getvalue() == ""
