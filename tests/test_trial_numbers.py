"""One number per tune trial: the stored Optuna study's trial.number, given when Tune makes the
trial (sertune/trials/study.py), whatever order the trials finish in; a restore that drops a trial
leaves its number to it (FAIL, dropped), and never gives it to another. That the console, the
tables, search.png and best_config.json show the same number is checked on a real tune in
test_live_view.py, and across a kill in test_tune_resume.py."""

from __future__ import annotations

import optuna
from ray import tune
from ray.tune.experiment.trial import Trial

from sertune.trials.searcher import RecordedOptunaSearch


def _searcher(url: str) -> RecordedOptunaSearch:
    return RecordedOptunaSearch(space={"lr": tune.loguniform(1e-4, 1e-2)}, metric="best_val_uar", mode="max", seed=0,
                                max_t=4, export_storage=url, study_name="s", attrs={"n_att": 1, "seed": 7})


def _stored(url: str) -> list[tuple[int, str, str]]:
    study = optuna.load_study(study_name="s", storage=url)
    return [(t.number, t.user_attrs["ray_trial_id"], t.state.name) for t in study.trials]


def test_trials_are_stored_as_they_are_made_and_keep_their_number_whatever_order_they_end_in(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    s = _searcher(url)
    for n in range(4):
        assert s.suggest(f"t{n}") is not None and s.number_of(f"t{n}") == n
    assert _stored(url) == [(n, f"t{n}", "RUNNING") for n in range(4)]  # optuna-dashboard shows them running
    done = {"training_iteration": 4, "best_val_uar": 0.5}
    s.on_trial_complete("t2", done)
    s.on_trial_complete("t0", {"training_iteration": 1, "best_val_uar": 0.2})  # stopped by ASHA: PRUNED
    s.on_trial_complete("t3", None, error=True)
    assert _stored(url) == [(0, "t0", "PRUNED"), (1, "t1", "RUNNING"), (2, "t2", "COMPLETE"), (3, "t3", "FAIL")]
    s.on_trial_complete("t1", done)
    study = optuna.load_study(study_name="s", storage=url)
    t0, t1 = study.trials[:2]
    assert t1.state.name == "COMPLETE" and t1.value == 0.5 and t1.intermediate_values == {4: 0.5}
    assert t0.intermediate_values == {1: 0.2} and t0.user_attrs["stopped_by"] == "ASHA"
    assert all(t.user_attrs["n_att"] == 1 and t.user_attrs["seed"] == 7 for t in study.trials)
    assert [t.params["lr"] for t in study.trials] == [s._ot_trials[f"t{n}"].params["lr"] for n in range(4)]


def _listed(tid: str, status: str, epochs: int = 0, lr: float = 1e-3) -> Trial:
    t = Trial("train_trial", trial_id=tid, config={"lr": lr}, stub=True)
    if epochs:
        t.update_last_result({"training_iteration": epochs, "best_val_uar": 0.4})
    t.set_status(status)
    return t


def test_a_restore_keeps_every_number_and_gives_a_dropped_trials_number_to_no_other(tmp_path):
    """A kill left the searcher's state and Tune's list from different moments: the searcher made
    a trial the list lacks ("lost": dropped, it keeps its number as FAIL), "b" finished after the
    searcher's state was saved, and the list holds "c", which the searcher never saw (made by the
    killed driver, so stored; here it was not: it gets the next number). A trial made after the
    restore gets a number no trial had."""
    url = f"sqlite:///{tmp_path}/optuna.db"
    s = _searcher(url)
    for tid in ["a", "b", "lost"]:
        s.suggest(tid)
    s.on_trial_complete("a", {"training_iteration": 4, "best_val_uar": 0.4})
    listed = [_listed("a", Trial.TERMINATED, 4), _listed("b", Trial.TERMINATED, 4), _listed("c", Trial.PENDING)]
    s.agree_with(listed)
    assert _stored(url) == [(0, "a", "COMPLETE"), (1, "b", "COMPLETE"), (2, "lost", "FAIL"), (3, "c", "RUNNING")]
    assert optuna.load_study(study_name="s", storage=url).trials[2].user_attrs["dropped"]
    assert [s.number_of(t) for t in "abc"] == [0, 1, 3]
    s.on_trial_complete("c", {"training_iteration": 2, "best_val_uar": 0.3})
    s.suggest("d")
    s.on_trial_complete("d", {"training_iteration": 4, "best_val_uar": 0.6})
    assert _stored(url)[3:] == [(3, "c", "PRUNED"), (4, "d", "COMPLETE")] and s.number_of("d") == 4


def test_a_searcher_without_storage_numbers_trials_as_its_study_does():
    s = RecordedOptunaSearch(space={"lr": tune.loguniform(1e-4, 1e-2)}, metric="best_val_uar", mode="max", seed=0,
                             max_t=4, export_storage=None, study_name="s")
    for tid in ["x", "y"]:
        s.suggest(tid)
    assert [s.number_of(t) for t in "xy"] == [0, 1] and s.number_of("z") is None
