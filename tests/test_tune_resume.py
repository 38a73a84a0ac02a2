"""`sertune tune` interrupted and run again: the experiment continues rather than starting over.

The CLI runs in a subprocess, in its own session, with its own local Ray (on loopback, under a
private temp dir given by RAY_TMPDIR); a test kills whatever is left of the sessions it opened
at the end -- never `ray stop`, which would stop every Ray on the machine.

What a rerun restores is Tune's experiment snapshot (`experiment_state-*.json`, rewritten every
10 s at most by default; every second here, through Ray's TUNE_GLOBAL_CHECKPOINT_S, so that short
trials on a fast machine are caught mid-run), so the tests decide what "progress before the
interruption" means from that snapshot, read after the kill, rather than from result.json files
that may be newer.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from proctools import Procs, clean_env, cmdline, sertune, signal_all, tail, wait_gone, wait_or_fail

pytestmark = pytest.mark.slow  # each test runs `sertune tune` twice in subprocesses, with their own Ray


# ------------------------------------------------------------------ processes


class _Runs:
    """The `sertune tune` runs of one test, all with the same command and Ray temp dir."""

    def __init__(self, cmd: list[str], work: Path):
        self.cmd, self.work = cmd, work
        self.procs = Procs()
        self.tmpdir = self.procs.tempdir("rr")
        self.env = clean_env(RAY_TMPDIR=self.tmpdir, TUNE_GLOBAL_CHECKPOINT_S="1")

    def start(self, name: str) -> tuple[subprocess.Popen, Path]:
        log = self.work / f"{name}.log"
        return self.procs.popen(self.cmd, self.env, log), log

    def wait(self, proc: subprocess.Popen, log: Path, timeout: float) -> int:
        return wait_or_fail(proc, timeout, log, "sertune tune")

    def leftovers(self, session: int, wait: float = 60.0) -> set[int]:
        return wait_gone({session}, [self.tmpdir], wait)

    def cleanup(self) -> set[int]:
        signal_all(self.procs.pids(), signal.SIGKILL)
        left = set()
        for s in self.procs.sessions:
            left |= self.leftovers(s, wait=15.0)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return left


def _poll_running(proc: subprocess.Popen, log: Path, event: str, missing: Callable[[], str | None],
                  timeout: float, interval: float) -> None:
    """Call ``missing()`` every ``interval`` s until it returns None; fail if the run ends before
    ``event``, or if ``timeout`` passes (with what ``missing()`` last said is not there yet)."""
    deadline = time.monotonic() + timeout
    while (why := missing()) is not None:
        assert proc.poll() is None, f"tune ended (rc {proc.returncode}) before {event}:\n{tail(log)}"
        assert time.monotonic() < deadline, f"{why}\n{tail(log)}"
        time.sleep(interval)


@pytest.fixture
def runs_resume(synth_store, tmp_path):
    made = []

    def make(num_samples: int, epochs: int, grace_period: int = 5) -> _Runs:
        cmd = [*sertune("tune"), "--store", synth_store, "--experiment-dir",
               str(tmp_path / "exp"), "--num-samples", str(num_samples), "--epochs", str(epochs),
               "--grace-period", str(grace_period), "--reduction-factor", "2", "--num-cpus", "2"]
        made.append(_Runs(cmd, tmp_path))
        return made[-1]

    yield make
    left = set()
    for r in made:
        left |= r.cleanup()
    assert not left, f"processes survived SIGKILL: {sorted(left)}"


# ------------------------------------------------------------------ the experiment on disk


def _tune_path(runs: _Runs) -> Path:
    return Path(runs.cmd[runs.cmd.index("--experiment-dir") + 1])


def _snapshot(exp: Path) -> dict[str, tuple[str, int]] | None:
    """trial id -> (status, last training_iteration) from Tune's experiment snapshot."""
    files = glob.glob(str(exp / "tune" / "tune" / "experiment_state-*.json"))
    if not files:
        return None
    try:
        data = json.loads(Path(max(files)).read_text())  # the newest session: names hold its start time
        out = {}
        for trial_json, runtime_json in data["trial_data"]:
            trial, runtime = json.loads(trial_json), json.loads(runtime_json)
            out[trial["trial_id"]] = (trial["status"], (runtime.get("last_result") or {}).get("training_iteration", 0))
        return out
    except (OSError, ValueError, KeyError):
        return None  # being written


def _result_file(exp: Path, trial_id: str) -> Path:
    found = glob.glob(str(exp / "tune" / "tune" / f"*_{trial_id}_*" / "result.json"))
    assert len(found) == 1, f"trial {trial_id}: result.json {found}"
    return Path(found[0])


def _lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # the last line, being written
    return out


def _final_outputs(exp: Path, num_samples: int) -> pd.DataFrame:
    best = json.loads((exp / "tune" / "best_config.json").read_text())
    assert best["n_trials"] == num_samples, best
    assert 0 <= best["best_val_uar"] <= 1
    trials = pd.read_parquet(exp / "tune" / "trials.parquet")
    assert len(trials) == num_samples, trials[["trial_id"]]
    assert trials["trial_id"].is_unique, trials["trial_id"].tolist()
    assert best["trial_id"] in set(trials["trial_id"])
    return trials


# ------------------------------------------------------------------ tests


def test_tune_ctrl_c_publishes_nothing_and_rerun_continues(runs_resume):
    num_samples, epochs = 4, 20
    runs = runs_resume(num_samples, epochs)
    exp = _tune_path(runs)

    def no_progress() -> str | None:
        lines = [len(_lines(Path(p))) for p in glob.glob(str(exp / "tune" / "tune" / "*" / "result.json"))]
        return None if lines and max(lines) >= 3 else "no trial progress in 240s:"

    proc, log1 = runs.start("tune1")
    _poll_running(proc, log1, "Ctrl-C", no_progress, timeout=240, interval=0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rc = runs.wait(proc, log1, 120)
    snap = _snapshot(exp)
    assert rc != 0, "an interrupted tune run exited 0"
    assert "tune interrupted after" in log1.read_text() and "tune finished in" not in log1.read_text(), tail(log1)
    assert not (exp / "tune" / "best_config.json").exists(), "an interrupted tune run published a best config"

    proc, log2 = runs.start("tune2")
    assert runs.wait(proc, log2, 300) == 0, tail(log2)
    trials = _final_outputs(exp, num_samples)
    assert set(snap) <= set(trials["trial_id"]), "trials of the first run were dropped: it started over"


def _searcher_ids(folder: Path) -> set[str] | None:
    """The Ray trial ids the saved searcher follows (None while the file is being written)."""
    import pickle

    files = glob.glob(str(folder / "searcher-state-*.pkl"))
    try:
        return set(pickle.loads(Path(max(files)).read_bytes())["_ot_trials"]) if files else None
    except Exception:  # noqa: BLE001 - partly copied
        return None


def _unwrap_searcher(tuner_pkl: Path) -> None:
    """Make ``tuner.pkl`` hold the searcher itself, not sertune's SearchGenerator around it."""
    import pickle

    from sertune.trials.searcher import ConsistentSearch

    state = pickle.loads(tuner_pkl.read_bytes())
    assert isinstance(state["_tune_config"].search_alg, ConsistentSearch)
    state["_tune_config"].search_alg = state["_tune_config"].search_alg.searcher
    tuner_pkl.write_bytes(pickle.dumps(state))


@pytest.mark.parametrize("left", ["searcher behind", "list behind"])
def test_tune_killed_then_rerun_continues_the_experiment(runs_resume, left):
    """SIGKILL the tune run (driver and its local Ray) once its snapshot holds a finished trial and
    a running one past its first checkpoint; the same command again finishes the experiment.

    Tune saves the trial list and the searcher's files one after another, and copies them into the
    experiment in the background: a kill in between leaves them from different moments. So after
    the kill one side is put back as it was early in the run, as such a kill leaves it:
    - "searcher behind": the searcher lacks a trial that runs on (Ray's OptunaSearch then raised
      KeyError on its first result, on every rerun);
    - "list behind": the list lacks trials the searcher and its trial count know (the rerun then
      stopped short of --num-samples); and its tuner.pkl holds the bare searcher, as those of tunes
      begun before sertune wrapped it do (the rerun must wrap it).
    Either way the rerun ends with --num-samples trials, and the Optuna study holds each one Tune
    ran. With the list intact, finished trials are not run again and running ones resume from
    their checkpoints. One trial at a time (--max-concurrent 1): the concurrency limit's saved
    trial ids are the searcher's, and one the rerun never finishes would hold the only slot for ever.

    On a fast machine an epoch of the synthetic store takes ~50 ms: with the first rung at epoch 25
    every trial spends epochs 6-25 in it, whatever ASHA decides there, and the snapshot is
    rewritten every second, so the window to kill in does not hang on ASHA letting one through."""
    import optuna

    num_samples, epochs = 4, 40
    runs = runs_resume(num_samples, epochs, grace_period=25)
    runs.cmd += ["--max-concurrent", "1"]
    exp = _tune_path(runs)
    folder = exp / "tune" / "tune"
    early: dict[str, bytes] = {}  # file -> its bytes, early in the run
    known: set[str] = set()  # the trial ids those files hold

    def not_interruptible() -> str | None:
        snap = _snapshot(exp) or {}
        if not early:  # the first snapshot and searcher that can be read
            ids, states = _searcher_ids(folder), glob.glob(str(folder / "*_state-*.json"))
            if snap and ids is not None and len(states) == 2:
                early.update({f: Path(f).read_bytes() for f in [*states, *glob.glob(str(folder / "searcher-state-*.pkl"))]})
                known.update(set(snap) | ids)
            return "no snapshot yet"
        new_running = [t for t, (s, it) in snap.items() if s == "RUNNING" and 6 <= it < epochs and t not in known]
        if new_running and "TERMINATED" in [s for s, _ in snap.values()]:
            return None
        return f"no snapshot to interrupt in 240s: {snap}, early: {sorted(known)}"

    proc, log1 = runs.start("tune1")
    # Polled often: the snapshot is rewritten every second.
    _poll_running(proc, log1, "the kill", not_interruptible, timeout=240, interval=0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left_behind = runs.leftovers(proc.pid)
    assert not left_behind, f"the killed run left processes behind: {[cmdline(p)[:160] for p in left_behind]}"
    assert not (exp / "tune" / "best_config.json").exists()
    at_kill = _snapshot(exp)
    for f, data in early.items():
        if ("experiment_state" in f) == (left == "list behind"):
            Path(f).write_bytes(data)
    if left == "list behind":
        _unwrap_searcher(folder / "tuner.pkl")

    snap = _snapshot(exp)  # what the rerun restores
    finished = {t for t, (s, _) in snap.items() if s == "TERMINATED"}
    resumable = {t for t, (s, it) in snap.items() if s == "RUNNING" and 6 <= it < epochs}
    finished_results = {t: _result_file(exp, t).read_bytes() for t in finished}
    first_pids = {t: {r["pid"] for r in _lines(_result_file(exp, t))} for t in resumable}

    proc, log2 = runs.start("tune2")
    assert runs.wait(proc, log2, 360) == 0, tail(log2)
    trials = _final_outputs(exp, num_samples)
    ran = set(trials["trial_id"])
    assert set(snap) <= ran, "trials of the first run were dropped: it started over"
    assert len(_snapshot(exp)) == num_samples
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{exp / 'tune' / 'optuna.db'}")
    told = [t.user_attrs["ray_trial_id"] for t in study.trials]
    assert len(told) == len(set(told)) and ran <= set(told), (sorted(told), sorted(ran))
    assert all(t.state.is_finished() for t in study.trials), [(t.number, t.state) for t in study.trials]
    # One number per trial: the table's is the study's, across the kill.
    number = {t.user_attrs["ray_trial_id"]: t.number for t in study.trials}
    assert dict(zip(trials["trial_id"], trials["trial"])) == {t: number[t] for t in ran}
    dropped = {t.user_attrs["ray_trial_id"] for t in study.trials if t.user_attrs.get("dropped")}
    assert not dropped & ran and all(t.state.name == "FAIL" for t in study.trials if t.user_attrs.get("dropped"))
    # Besides those made and dropped, only a trial the first run's searcher saw finish may be in
    # the study and not in the list.
    assert set(told) - dropped <= ran | set(at_kill), (sorted(told), sorted(ran))
    if left == "list behind":
        return  # its trials restart from the early snapshot's checkpoints
    assert finished and resumable, snap
    for t, data in finished_results.items():
        assert _result_file(exp, t).read_bytes() == data, f"finished trial {t} ran again"
    for t in resumable:
        lines = _lines(_result_file(exp, t))
        again = [r for r in lines if r["pid"] not in first_pids[t]]  # the snapshot says unfinished: it reruns
        assert again, f"trial {t} was running at the kill but did not run again"
        assert again[0]["epoch"] > 5, f"trial {t} restarted at epoch {again[0]['epoch']}, not from its checkpoint"
        assert again[0]["epoch"] <= max(r["epoch"] for r in lines if r["pid"] in first_pids[t]) + 1
