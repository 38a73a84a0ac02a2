"""The stored Optuna study of a tune: what optuna-dashboard (and ``optuna.load_study``) reads.

The searcher (``searcher.py``) keeps its own study in memory, restored with Tune's snapshot (Ray's
OptunaSearch on an RDB storage cannot be restored after a kill), and mirrors it here:

- a trial is stored RUNNING as soon as Tune makes it, so its ``trial.number`` is fixed then, in
  the order the trials were made: that number is the trial's number everywhere (console,
  trials.parquet, curves.parquet, search.png, best_config.json);
- when it ends it is brought up to date: COMPLETE, or PRUNED (ASHA stopped it; with its
  per-epoch values) or FAIL;
- a trial a restored Tune run will not run again (not in its trial list) is marked FAIL with the
  user attribute ``dropped``: it keeps its number, and TPE's constant liar stops counting it.

Trials are found by their Ray trial id (user attribute ``ray_trial_id``), so a resumed tune adds
to the same study and nothing is stored twice. The study names its objective, and each trial
carries n_att and seed as user attributes.
"""

from __future__ import annotations

import math

RAY_ID = "ray_trial_id"
DROPPED = "dropped"  # user attribute of a trial a restored Tune run will not run


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _load(storage: str, name: str):
    return _optuna().create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)


def claim_study(storage: str, name: str, exp: str, metric: str | None = None) -> None:
    """Create the study, or check that it is this experiment's: two experiments of the same
    name sharing one --optuna-storage would otherwise mix their trials. ``metric`` names the
    objective (optuna-dashboard shows it instead of "Objective 0")."""
    from sertune.errors import ConfigError

    stored = _load(storage, name)
    owner = stored.user_attrs.get("sertune_experiment")
    if owner is None:
        stored.set_user_attr("sertune_experiment", exp)
    elif owner != exp:
        raise ConfigError(f"--optuna-storage: study {name!r} there belongs to the experiment {owner}; "
                          "use another --optuna-storage or an experiment directory of another name")
    if metric and stored.metric_names != [metric]:
        stored.set_metric_names([metric])


def _by_ray_id(stored) -> dict:
    return {t.user_attrs.get(RAY_ID): t for t in stored.get_trials(deepcopy=False)}


def numbers(storage: str, name: str) -> dict[str, int]:
    """Ray trial id -> the stored trial's number."""
    return {rid: t.number for rid, t in _by_ray_id(_load(storage, name)).items() if rid}


def register(storage: str, name: str, ot_trial, attrs: dict) -> int:
    """Store the just-made ``ot_trial`` (of the searcher's study; its user attributes hold the
    Ray trial id) RUNNING, unless it is stored already; return its number."""
    optuna = _optuna()
    stored = _load(storage, name)
    found = _by_ray_id(stored).get(ot_trial.user_attrs[RAY_ID])
    if found is not None:
        return found.number
    stored.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params=ot_trial.params, distributions=ot_trial.distributions,
        user_attrs={**attrs, **ot_trial.user_attrs}))
    return _by_ray_id(stored)[ot_trial.user_attrs[RAY_ID]].number


def export_study(study, storage: str, name: str):
    """Bring ``storage`` up to date with ``study``'s finished trials: a stored RUNNING one gets
    its end, one the storage lacks is added (a tune begun before trials were stored as they were
    made). Returns the stored study."""
    stored = _load(storage, name)
    have = _by_ray_id(stored)
    new = []
    for t in study.get_trials(deepcopy=False):
        rid = t.user_attrs.get(RAY_ID)
        if not t.state.is_finished() or not rid:
            continue
        if rid not in have:
            new.append(t)
        elif not have[rid].state.is_finished():
            _finish(stored, have[rid], t)
    if new:
        stored.add_trials(new)
    return stored


def _finish(stored, into, t) -> None:
    storage, tid = stored._storage, into._trial_id
    for step, value in t.intermediate_values.items():
        storage.set_trial_intermediate_value(tid, step, value)
    for key, value in t.user_attrs.items():
        storage.set_trial_user_attr(tid, key, value)
    storage.set_trial_state_values(tid, t.state, t.values)


def drop_unlisted(storage: str, name: str, listed: set[str], why: str) -> None:
    """Mark every stored unfinished trial whose Ray id is not in ``listed`` FAIL and dropped."""
    optuna = _optuna()
    stored = _load(storage, name)
    for rid, t in _by_ray_id(stored).items():
        if not t.state.is_finished() and rid not in listed:
            stored._storage.set_trial_user_attr(t._trial_id, DROPPED, why)
            stored._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)


def importances(storage: str | None, name: str) -> tuple[dict | None, str]:
    """Optuna's hyperparameter importances over the full-budget (COMPLETE) trials, or None and
    why not. PED-ANOVA, named rather than Optuna's default: it is deterministic (Optuna 4's default,
    fANOVA, is a random forest without a seed), so the same study always gives the same figures."""
    if not storage:
        return None, "no Optuna storage"
    optuna = _optuna()
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return None, f"{len(complete)} full-budget trial(s): too few for importances"
    try:
        found = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (RuntimeError, ValueError) as e:
        return None, f"not computable ({e})"
    return {k: float(v) for k, v in found.items() if not math.isnan(v)}, f"over {len(complete)} full-budget trials"
