"""The tune stage's search algorithm: Optuna's TPE kept in memory (``RecordedOptunaSearch``),
inside a ``SearchGenerator`` that makes it agree with the trials Tune restores (``ConsistentSearch``).

Why the second: Tune saves its trial list (``experiment_state-*.json``), the searcher
(``searcher-state-*.pkl``) and the generator's count of trials made (``search_gen_state-*.json``)
one after another, and a background thread copies them into the experiment folder. A kill in
between leaves them from different moments: the searcher lacks a trial the list holds (its first
result then raised KeyError in Ray's OptunaSearch, on every rerun), or still runs one the list
lacks; and the count is off, so a rerun made one trial too many or stopped short of
``--num-samples``. The list is what Tune restores and runs, so on a restore it wins.

Each trial's number is the one the stored study (``study.py``) gives it when Tune makes it, or
without a storage the in-memory study's; ``number_of`` tells it to the console and the tables.
"""

from __future__ import annotations

from ray.tune.search import ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils import flatten_dict

from sertune.trials import study


class ConsistentSearch(SearchGenerator):
    """Ray's SearchGenerator, restored to agree with the trial list Tune restores beside it."""

    experiment_path: str | None = None  # the Tune folder, set by `restoring`: where Tune reads the list

    def restore_from_dir(self, dirpath: str):
        super().restore_from_dir(dirpath)
        trials = saved_trials(self.experiment_path or dirpath)
        self._counter = len(trials)  # what decides whether more trials are made
        searcher = self.searcher
        while hasattr(searcher, "searcher"):  # of the wrappers, only the concurrency limit keeps trial ids
            if isinstance(searcher, ConcurrencyLimiter):
                searcher.live_trials = {t.trial_id for t in trials if t.status not in ("TERMINATED", "ERROR")}
            searcher = searcher.searcher
        searcher.agree_with(trials)


def recorded(search_alg) -> "RecordedOptunaSearch | None":
    """The RecordedOptunaSearch inside ``search_alg``'s wrappers (generator, concurrency limit)."""
    while not isinstance(search_alg, RecordedOptunaSearch) and hasattr(search_alg, "searcher"):
        search_alg = search_alg.searcher
    return search_alg if isinstance(search_alg, RecordedOptunaSearch) else None


def restoring(tuner, path: str):
    """``tuner`` (restored from ``path``) with its search algorithm a ConsistentSearch reading the
    list from ``path``. Tunes started before ConsistentSearch existed pickled a bare searcher, which
    Tune would wrap in a plain SearchGenerator; the folder may have moved since it was pickled."""
    config = tuner._local_tuner._tune_config  # what Tuner.restore unpickled and fit() runs
    if not isinstance(config.search_alg, ConsistentSearch):
        config.search_alg = ConsistentSearch(config.search_alg)
    config.search_alg.experiment_path = path
    return tuner


def saved_trials(path: str) -> list:
    """The trials of the newest experiment snapshot in the Tune folder ``path`` (local or URI):
    the file, and the choice among several, that Tune's own restore reads. Not the driver's
    staging copy: on a long-lived cluster that may still hold newer files a killed driver never
    copied into the experiment."""
    from ray.train._internal.storage import get_fs_and_path
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
    from ray.tune.experiment.trial import Trial
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    fs, fs_path = get_fs_and_path(path)
    # Tune's restore has just read this file, so it is there.
    with fs.open_input_stream(_find_newest_experiment_checkpoint(fs_path, fs=fs)) as f:
        state = _loads_with_cloudpickle(f.readall())
    trials = []
    for trial_json, run_json in state["trial_data"]:
        trial = Trial.from_json_state(trial_json, stub=True)
        trial.restore_run_metadata(run_json)
        trials.append(trial)
    return trials


class RecordedOptunaSearch(OptunaSearch):
    """OptunaSearch that tells ASHA-stopped trials PRUNED and copies finished trials into
    ``export_storage`` (an RDB URL; None: in memory only) under ``study_name``. Its own
    study stays in memory: Ray's OptunaSearch on an RDB storage cannot be restored after a kill.
    ``attrs`` (n_att, seed) go on every stored trial as user attributes."""

    def __init__(self, *args, max_t: int, export_storage: str | None, study_name: str, attrs: dict | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.max_t, self.export_storage, self.study_name = max_t, export_storage, study_name
        self.attrs, self.numbers = dict(attrs or {}), {}

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if isinstance(config, dict):  # a trial Tune makes now: it gets its number
            self._number(trial_id)
        return config

    def restore(self, checkpoint_path: str):
        super().restore(checkpoint_path)
        self.__dict__.setdefault("numbers", {})  # a searcher saved before trials had numbers
        self.__dict__.setdefault("attrs", {})

    def number_of(self, trial_id: str) -> int | None:
        return self.numbers.get(trial_id)

    def _number(self, trial_id: str) -> None:
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr(study.RAY_ID, trial_id)
        if self.export_storage:
            self.numbers[trial_id] = study.register(self.export_storage, self.study_name, ot_trial, self.attrs)
        else:
            self.numbers[trial_id] = ot_trial.number

    def on_trial_complete(self, trial_id, result=None, error=False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            ot_trial.set_user_attr(study.RAY_ID, trial_id)
            epochs = (result or {}).get("training_iteration")
            if epochs is not None:
                ot_trial.set_user_attr("epochs", int(epochs))
                if result.get(self.metric) is not None:  # Tune hands the last result here, not to on_trial_result
                    ot_trial.report(result[self.metric], int(epochs))
            if not error and result and epochs is not None and epochs < self.max_t:
                ot_trial.set_user_attr("stopped_by", "ASHA")
                self._ot_study.tell(ot_trial, state=_state("PRUNED"))
                self._completed_trials.add(trial_id)
                self.export()
                return
        super().on_trial_complete(trial_id, result, error)
        self.export()

    def export(self) -> None:
        if self.export_storage:
            study.export_study(self._ot_study, self.export_storage, self.study_name)

    def agree_with(self, trials: list) -> None:
        """Make the trials this searcher follows those of Tune's restored list ``trials``.

        A listed trial it does not know is asked again with the parameters it ran with; a listed
        finished or failed one it did not see end is told now (Tune tells that only once). An
        unfinished one it knows and the list lacks will not run again: it is told FAIL and marked
        ``dropped`` (TPE's constant liar would otherwise count it as running for ever), in the
        stored study too, where it keeps its number. One it saw finish stays in the study: it did
        run, with those parameters, to that score, so the study may hold more trials than
        --num-samples. Every listed trial has its number: the stored one, or a new one if the
        storage lacks it (a tune begun before trials were stored as they were made)."""
        listed = {t.trial_id for t in trials}
        for trial_id in [t for t in self._ot_trials if t not in listed and t not in self._completed_trials]:
            ot_trial = self._ot_trials.pop(trial_id)
            ot_trial.set_user_attr(study.RAY_ID, trial_id)
            ot_trial.set_user_attr(study.DROPPED, DROPPED_WHY)
            self._ot_study.tell(ot_trial, state=_state("FAIL"))
        if self.export_storage:
            study.drop_unlisted(self.export_storage, self.study_name, listed, DROPPED_WHY)
        stored = study.numbers(self.export_storage, self.study_name) if self.export_storage else {}
        for trial in trials:
            if trial.trial_id not in self._ot_trials:
                self._adopt(trial.trial_id, trial.config)
            if self.number_of(trial.trial_id) is None:
                if trial.trial_id in stored:
                    self.numbers[trial.trial_id] = stored[trial.trial_id]
                else:
                    self._number(trial.trial_id)
            if trial.trial_id in self._completed_trials:
                continue
            if trial.status == "TERMINATED":
                self.on_trial_complete(trial.trial_id, trial.last_result or None)
            elif trial.status == "ERROR":
                self.on_trial_complete(trial.trial_id, None, error=True)

    def _adopt(self, trial_id: str, config: dict) -> None:
        flat = flatten_dict(config)
        self._ot_study.enqueue_trial({name: flat[name] for name in self._space})
        self._ot_trials[trial_id] = self._ot_study.ask(fixed_distributions=self._space)


DROPPED_WHY = "not in the trial list Tune restored"


def _state(name: str):
    from optuna.trial import TrialState

    return TrialState[name]
