"""`sertune sweep` under faults: idempotent reruns, a killed driver, a worker node that dies.

Every test drives the real CLI in a subprocess, in its own session (start_new_session), and at
the end kills whatever is still alive in the sessions it opened -- never `ray stop`, which
would stop every Ray on the machine. Ray stays on loopback: the local Ray of `sertune` binds
127.0.0.2 by itself; the two-node cluster is a head on 127.0.0.2 and a worker on 127.0.0.3.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from proctools import (HEAD_IP, WORKER_IP, Procs, clean_env, cmdline, free_port, gcs_nodes, node_ports, ray_start,
                       sertune, session_pids, tail, wait_gone, wait_or_fail)

from sertune.results import read_results

pytestmark = pytest.mark.slow  # each test runs whole sweeps in subprocesses, with their own Ray


# ------------------------------------------------------------------ sweeps


def _sweep_cmd(store: str, exp: Path, n_att: str, seeds: int, epochs: int, *more: str) -> list[str]:
    return [*sertune("sweep"), "--store", store, "--experiment-dir", str(exp), "--no-tuned", "--n-att", n_att,
            "--seeds", str(seeds), "--epochs", str(epochs), *more]


def _results_path(exp: Path) -> Path:
    return exp / "sweep" / "results.parquet"


def _rows(exp: Path) -> dict[tuple[int, int], dict]:
    """(n_att, seed) -> row; read_results already refuses a duplicate pair."""
    path = _results_path(exp)
    if not path.exists():
        return {}
    df = read_results(str(path))
    return {(int(r["n_att"]), int(r["seed"])): r for r in df.to_dict("records")}


def _assert_complete(exp: Path, pairs: set[tuple[int, int]], epochs: int) -> dict[tuple[int, int], dict]:
    df = read_results(str(_results_path(exp)))  # schema check, and no duplicate pair
    got = list(zip(df["n_att"].astype(int), df["seed"].astype(int)))
    assert sorted(got) == sorted(pairs), f"pairs {sorted(got)} != {sorted(pairs)}"
    assert (df["epochs"] == epochs).all(), df[["n_att", "seed", "epochs"]]
    assert df["uar"].between(0, 1).all()
    return _rows(exp)


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _run_now(log: Path) -> tuple[int, int]:
    """(run now, already there) from the sweep's summary line."""
    m = re.findall(r"\((\d+) run now, (\d+) already there\)", tail(log, 20000))
    assert m, f"no summary line in the output:\n{tail(log)}"
    return int(m[-1][0]), int(m[-1][1])


def _local_sweep(procs: Procs, cmd: list[str], log: Path, tmpdir: str, timeout: float = 240) -> int:
    """Run a sweep with its own local Ray (temp dir under ``tmpdir``) to the end."""
    proc = procs.popen(cmd, clean_env(RAY_TMPDIR=tmpdir), log)
    return wait_or_fail(proc, timeout, log)


# ------------------------------------------------------------------ one machine, local Ray


@pytest.fixture(scope="module")
def killed_sweep_faults(synth_store, tmp_path_factory):
    """A sweep SIGKILLed (driver and its local Ray, the whole session) once some pairs are in
    the table, then the same command again to the end. Yields what the tests check."""
    procs = Procs()
    tmpdir = procs.tempdir("rf")
    work = tmp_path_factory.mktemp("killed-sweep")
    exp, log1, log2 = work / "exp", work / "sweep1.log", work / "sweep2.log"
    pairs = {(a, s) for a in (1, 2) for s in range(2)}
    epochs = 10
    cmd = _sweep_cmd(synth_store, exp, "1,2", 2, epochs, "--num-cpus", "2")
    try:
        proc = procs.popen(cmd, clean_env(RAY_TMPDIR=tmpdir), log1)
        deadline = time.monotonic() + 180
        while not _rows(exp):
            assert proc.poll() is None, f"the sweep ended (rc {proc.returncode}) before the kill:\n{tail(log1)}"
            assert time.monotonic() < deadline, f"no result row after 180s:\n{tail(log1)}"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything in its session, at once
        proc.wait()
        # Its local Ray goes with it: nothing of the session, nor anything naming its temp dir, lives on.
        left = [cmdline(p)[:160] for p in wait_gone({proc.pid}, [tmpdir], 20)]
        before = _rows(exp)  # read after the kill: a row may have landed between the poll and the kill
        assert 1 <= len(before) < len(pairs), f"killed too late to test anything: {sorted(before)}"
        rc = _local_sweep(procs, cmd, log2, tmpdir)
        yield SimpleNamespace(procs=procs, tmpdir=tmpdir, cmd=cmd, exp=exp, pairs=pairs, epochs=epochs,
                              left_after_kill=left, before=before, rc=rc, log=log2)
    finally:
        still = procs.close()
        assert not still, f"processes survived SIGKILL: {sorted(still)}"


def test_killed_driver_rerun_finishes_the_rest(killed_sweep_faults):
    k = killed_sweep_faults
    assert not k.left_after_kill, f"the killed sweep left processes behind: {k.left_after_kill}"
    assert k.rc == 0, tail(k.log)
    assert _run_now(k.log) == (len(k.pairs) - len(k.before), len(k.before))
    after = _assert_complete(k.exp, k.pairs, k.epochs)
    for pair, row in k.before.items():  # as JSON: NaN == NaN there
        assert _same(after[pair], row), f"the rerun changed the row of {pair}, written before the kill"


def test_rerun_of_a_finished_sweep_runs_nothing(killed_sweep_faults, tmp_path):
    k = killed_sweep_faults
    if k.rc != 0:
        pytest.skip("the sweep did not finish (see test_killed_driver_rerun_finishes_the_rest)")
    table = _results_path(k.exp).read_bytes()
    tune_runs = sorted(p.name for p in (k.exp / "sweep").glob("sweep-*"))
    log = tmp_path / "sweep3.log"
    assert _local_sweep(k.procs, k.cmd, log, k.tmpdir) == 0, tail(log)
    assert _run_now(log) == (0, len(k.pairs))
    assert _results_path(k.exp).read_bytes() == table, "a rerun with nothing to do rewrote the table"
    assert sorted(p.name for p in (k.exp / "sweep").glob("sweep-*")) == tune_runs, "a rerun with nothing to do started Tune"


# ------------------------------------------------------------------ a two-node cluster


def _node_ports() -> list[str]:
    return [*node_ports(), "--disable-usage-stats"]


def _alive_nodes(gcs: str) -> set[str]:
    """IPs of the nodes the GCS reports alive."""
    from ray.core.generated import gcs_pb2

    return {n.node_manager_address for n in gcs_nodes(gcs) if n.state == gcs_pb2.GcsNodeInfo.ALIVE}


def _trial_progress(exp: Path) -> dict[str, dict]:
    """trial dir -> {"pair", "lines": [(node_ip, epoch, pid), ...]} from the trials' result.json."""
    out = {}
    for path in glob.glob(str(exp / "sweep" / "sweep-*" / "*" / "result.json")):
        lines, pair = [], None
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # being written
            if "epoch" in r:
                lines.append((r.get("node_ip"), r["epoch"], r.get("pid")))
            pair = pair or tuple(r.get("config", {}).get("pair", ()))
        out[os.path.dirname(path)] = {"pair": pair, "lines": lines}
    return out


@pytest.mark.slow
def test_worker_node_dies_mid_trial(synth_store, tmp_path, procs):
    """A head (1 CPU) and a worker (1 CPU) started with `ray start`; once a trial on the worker
    is past its first checkpoint, SIGKILL the worker's raylet. The trial is retried on the
    head from its checkpoint, the driver exits 0, and every pair is in the table once."""
    temp = procs.tempdir("rf")
    env = clean_env(RAY_AUTH_MODE="disabled")
    gcs = f"{HEAD_IP}:{free_port()}"
    ray_start(procs, ["--head", f"--node-ip-address={HEAD_IP}", f"--port={gcs.rsplit(':', 1)[1]}",
                              "--include-dashboard=false", f"--dashboard-port={free_port()}",
                              f"--ray-client-server-port={free_port()}", "--num-cpus=1", "--num-gpus=0",
                              f"--temp-dir={temp}/head", *_node_ports()], env, tmp_path / "head.log")
    worker_session = ray_start(procs, [f"--address={gcs}", f"--node-ip-address={WORKER_IP}", "--num-cpus=1",
                              "--num-gpus=0", f"--temp-dir={temp}/worker", *_node_ports()], env, tmp_path / "worker.log")
    deadline = time.monotonic() + 60
    while (alive := _alive_nodes(gcs)) != {HEAD_IP, WORKER_IP}:
        assert time.monotonic() < deadline, f"cluster not up: alive nodes {alive}"
        time.sleep(0.5)
    raylets = [p for p in session_pids({worker_session}) if "/raylet/raylet" in cmdline(p).split(" ")[0]]
    assert len(raylets) == 1, f"worker raylet not found: {raylets}"

    exp, log = tmp_path / "exp", tmp_path / "sweep.log"
    pairs = {(1, 0), (2, 0)}  # one trial per node (1 CPU each): one is on the worker at the kill
    epochs = 120  # checkpoints every 5 epochs; long enough to be mid-trial at the kill on an idle machine too
    driver = procs.popen(_sweep_cmd(synth_store, exp, "1,2", 1, epochs, "--address", gcs,
                                           "--max-failures", "3"), env, log)
    deadline = time.monotonic() + 180
    victim = None
    while victim is None:
        for trial, p in _trial_progress(exp).items():
            mine = [e for ip, e, _ in p["lines"] if ip == WORKER_IP]
            if mine and 6 <= max(mine) <= epochs - 15:  # a checkpoint at epoch 5 exists, far from the end
                victim = trial
        assert driver.poll() is None, f"sweep ended (rc {driver.returncode}) before the kill:\n{tail(log)}"
        assert time.monotonic() < deadline, f"no trial progressed on the worker in 180s:\n{tail(log)}"
        time.sleep(0.2)
    os.kill(raylets[0], signal.SIGKILL)

    assert wait_or_fail(driver, 300, log) == 0, tail(log)
    deadline = time.monotonic() + 90  # the GCS declares a node dead only after missed health checks
    while WORKER_IP in _alive_nodes(gcs):
        assert time.monotonic() < deadline, "the killed worker node still counts as alive"
        time.sleep(1)
    rows = _assert_complete(exp, pairs, epochs)
    progress = _trial_progress(exp)[victim]
    pair = progress["pair"]
    killed_at = max(e for ip, e, _ in progress["lines"] if ip == WORKER_IP)  # it may report a little after the kill
    assert rows[pair]["node"].endswith("/" + HEAD_IP), f"{pair} was not retried on the head: {rows[pair]['node']}"
    # Retried from a checkpoint (epoch 5, 10, ...), not from the first epoch, and not from one older
    # than the last the driver recorded. No upper bound from here: result.json is the driver's record
    # and loses the worker's last reports before the kill while their checkpoints are already in
    # storage (seen on an idle 2-core machine: lines to 28, retry from 31; lines to 56, retry from 66).
    on_head = [e for ip, e, _ in progress["lines"] if ip == HEAD_IP]
    assert on_head and 5 < on_head[0] < epochs and (on_head[0] - 1) % 5 == 0, f"retry started at epoch {on_head[:1]}"
    assert on_head[0] - 1 > killed_at - 5, f"retry started at epoch {on_head[0]}, an older checkpoint than epoch {killed_at}'s"
    assert on_head[-1] == epochs
