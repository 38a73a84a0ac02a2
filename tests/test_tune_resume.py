"""`sertune tune` interrupted and run again: the experiment continues rather than starting over.

The CLI runs in a subprocess, in its own session, with its own local Ray (on loopback, under a
private temp dir given by RAY_TMPDIR); a test kills whatever is left of the sessions it opened
at the end -- never `ray stop`, which would stop every Ray on the machine.

What a rerun restores is Tune's experiment snapshot (`experiment_state-*.json`, rewritten
every ~10 s), so the tests decide what "progress before the interruption" means from that
snapshot, read after the kill, rather than from result.json files that may be newer.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

FOREIGN_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_TMPDIR")


# ------------------------------------------------------------------ processes


def _proc_table_resume() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id) of every live (non-zombie) process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields and fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def _cmdline_resume(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _left_resume(session: int, marker: str) -> set[int]:
    """Live processes of the session, their descendants, and anything naming ``marker``."""
    table = _proc_table_resume()
    pids = {pid for pid, (_, sid) in table.items() if sid == session}
    while True:
        more = {pid for pid, (ppid, _) in table.items() if ppid in pids} - pids
        if not more:
            break
        pids |= more
    pids |= {pid for pid in table if marker in _cmdline_resume(pid)}
    pids.discard(os.getpid())
    return pids


class _Runs:
    """The `sertune tune` runs of one test, all with the same command and Ray temp dir."""

    def __init__(self, cmd: list[str], work: Path):
        self.cmd, self.work = cmd, work
        self.tmpdir = tempfile.mkdtemp(prefix="rr", dir="/tmp")  # short: Ray's unix sockets live under it
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV and not k.startswith("SERTUNE_")}
        self.env.update(PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=self.tmpdir)
        self.sessions: list[int] = []

    def start(self, name: str) -> tuple[subprocess.Popen, Path]:
        log = self.work / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.sessions.append(proc.pid)
        return proc, log

    def wait(self, proc: subprocess.Popen, log: Path, timeout: float) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"sertune tune ran past {timeout:.0f}s:\n{_tail_resume(log)}")

    def leftovers(self, session: int, wait: float = 60.0) -> set[int]:
        deadline = time.monotonic() + wait
        while (left := _left_resume(session, self.tmpdir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left

    def cleanup(self) -> set[int]:
        pids = set()
        for s in self.sessions:
            pids |= _left_resume(s, self.tmpdir)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = set()
        for s in self.sessions:
            left |= self.leftovers(s, wait=15.0)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return left


@pytest.fixture
def runs_resume(store_resume, tmp_path):
    made = []

    def make(num_samples: int, epochs: int) -> _Runs:
        cmd = [sys.executable, "-m", "sertune", "tune", "--store", store_resume, "--experiment-dir",
               str(tmp_path / "exp"), "--num-samples", str(num_samples), "--epochs", str(epochs),
               "--grace-period", "5", "--reduction-factor", "2", "--num-cpus", "2"]
        made.append(_Runs(cmd, tmp_path))
        return made[-1]

    yield make
    left = set()
    for r in made:
        left |= r.cleanup()
    assert not left, f"processes survived SIGKILL: {sorted(left)}"


def _tail_resume(log: Path, n: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------ data


def _shared_store(tmp_path_factory) -> str:
    """The built-in corpus (6 actors) and its store, built once per pytest session in-process
    (no Ray), under the session's base temp dir so test_sweep_faults.py reuses it."""
    from sertune.features import FeatureConfig
    from sertune.store import build_store, extract_chunk, plan_build
    from sertune.synthetic import write_corpus

    base = tmp_path_factory.getbasetemp() / "sertune-synthetic-6"
    store = base / "store"
    if (base / "READY").exists():
        return str(store)
    shutil.rmtree(base, ignore_errors=True)
    write_corpus(base / "corpus", actors=6, seed=0)
    config = FeatureConfig()
    plan = plan_build(str(base / "corpus"), str(store), config, force=False)
    build_store(plan, lambda chunks: (extract_chunk(c, config) for c in chunks))
    (base / "READY").write_text("ok")
    return str(store)


@pytest.fixture(scope="module")
def store_resume(tmp_path_factory) -> str:
    return _shared_store(tmp_path_factory)


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


def test_tune_killed_then_rerun_continues_the_experiment(runs_resume):
    """SIGKILL the tune run (driver and its local Ray) once its snapshot holds a finished trial
    and a running one past its first checkpoint; the same command again finishes the
    experiment: the same trials, finished ones not run again, running ones resumed."""
    num_samples, epochs = 6, 20
    runs = runs_resume(num_samples, epochs)
    exp = _tune_path(runs)

    proc, log1 = runs.start("tune1")
    deadline = time.monotonic() + 240
    while True:
        snap = _snapshot(exp) or {}
        statuses = [s for s, _ in snap.values()]
        if "TERMINATED" in statuses and any(s == "RUNNING" and 6 <= it < epochs for s, it in snap.values()):
            break
        assert proc.poll() is None, f"tune ended (rc {proc.returncode}) before the kill:\n{_tail_resume(log1)}"
        assert time.monotonic() < deadline, f"no snapshot to interrupt in 240s: {snap}\n{_tail_resume(log1)}"
        time.sleep(0.05)  # Tune rewrites the snapshot at every trial checkpoint (num_to_keep=1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = runs.leftovers(proc.pid)
    assert not left, f"the killed run left processes behind: {[_cmdline_resume(p)[:160] for p in left]}"
    assert not (exp / "tune" / "best_config.json").exists()

    snap = _snapshot(exp)  # what the rerun restores
    finished = {t for t, (s, _) in snap.items() if s == "TERMINATED"}
    # Checkpointed at epoch 5 at least, and with epochs left to run after a restore.
    resumable = {t for t, (s, it) in snap.items() if s == "RUNNING" and 6 <= it < epochs}
    assert finished and resumable and len(finished) < num_samples, snap
    finished_results = {t: _result_file(exp, t).read_bytes() for t in finished}
    first_pids = {t: {r["pid"] for r in _lines(_result_file(exp, t))} for t in resumable}

    proc, log2 = runs.start("tune2")
    assert runs.wait(proc, log2, 360) == 0, _tail_resume(log2)

    trials = _final_outputs(exp, num_samples)
    assert set(snap) <= set(trials["trial_id"]), "trials of the first run were dropped: it started over"
    assert len(_snapshot(exp)) == num_samples
    for t, data in finished_results.items():
        assert _result_file(exp, t).read_bytes() == data, f"finished trial {t} ran again"
    for t in resumable:
        lines = _lines(_result_file(exp, t))
        again = [r for r in lines if r["pid"] not in first_pids[t]]  # the snapshot says unfinished: it reruns
        assert again, f"trial {t} was running at the kill but did not run again"
        assert again[0]["epoch"] > 5, f"trial {t} restarted at epoch {again[0]['epoch']}, not from its checkpoint"
        assert again[0]["epoch"] <= max(r["epoch"] for r in lines if r["pid"] in first_pids[t]) + 1


def test_tune_ctrl_c_publishes_nothing_and_rerun_continues(runs_resume):
    num_samples, epochs = 4, 20
    runs = runs_resume(num_samples, epochs)
    exp = _tune_path(runs)

    proc, log1 = runs.start("tune1")
    deadline = time.monotonic() + 240
    while True:
        lines = [len(_lines(Path(p))) for p in glob.glob(str(exp / "tune" / "tune" / "*" / "result.json"))]
        if lines and max(lines) >= 3:
            break
        assert proc.poll() is None, f"tune ended (rc {proc.returncode}) before Ctrl-C:\n{_tail_resume(log1)}"
        assert time.monotonic() < deadline, f"no trial progress in 240s:\n{_tail_resume(log1)}"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rc = runs.wait(proc, log1, 120)
    snap = _snapshot(exp)
    assert rc != 0, "an interrupted tune run exited 0"
    assert not (exp / "tune" / "best_config.json").exists(), "an interrupted tune run published a best config"

    proc, log2 = runs.start("tune2")
    assert runs.wait(proc, log2, 300) == 0, _tail_resume(log2)
    trials = _final_outputs(exp, num_samples)
    assert set(snap) <= set(trials["trial_id"]), "trials of the first run were dropped: it started over"
