"""Processes and loopback Ray clusters for the tests that drive `sertune`, `ray` and jobs/*.sh.

A test starts what it runs in sessions of its own (start_new_session) and kills what is left of
those sessions, their descendants and anything naming its private temp dirs -- never `ray stop`,
which would stop every Ray on the machine. Ray stays on loopback: a head on HEAD_IP, a worker
on WORKER_IP.

Every subprocess gets `clean_env()`: this interpreter's bin/ first on PATH, so that `ray` and
`sertune` are the ones under test even where the caller's PATH has none (`tool`, `sertune`).

Imported as `proctools`: pytest puts tests/ on sys.path (rootdir-based, no __init__.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
# Variables that would point sertune or Ray at something other than what a test sets up.
RAY_VARS = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
            "RAY_TMPDIR",
            # what sertune's private local Ray sets while it runs (ray_runtime.local_env): a `ray start`
            # cluster of a test must not inherit the session Ray's loopback-only settings
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT")


# ------------------------------------------------------------------ processes


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id) of every live (non-zombie) process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if fields and fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def session_pids(sessions: set[int]) -> set[int]:
    """Processes of the sessions and all their descendants (some leave the session: setsid)."""
    table = proc_table()
    pids = {pid for pid, (_, sid) in table.items() if sid in sessions}
    while True:
        more = {pid for pid, (ppid, _) in table.items() if ppid in pids} - pids
        if not more:
            break
        pids |= more
    pids.discard(os.getpid())
    return pids


def strays(marker: str) -> set[int]:
    """Processes whose command line names ``marker`` (a private temp dir)."""
    return {pid for pid in proc_table() if pid != os.getpid() and marker in cmdline(pid)}


def live(sessions: set[int], markers: Iterable[str]) -> set[int]:
    """What is alive of the sessions, their descendants, and anything naming one of ``markers``."""
    pids = session_pids(sessions)
    for marker in markers:
        pids |= strays(marker)
    return pids


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill(pids: set[int], timeout: float = 15.0, sig: int = signal.SIGKILL) -> set[int]:
    """Send ``sig`` (SIGKILL) to the processes; return those still alive after ``timeout``."""
    signal_all(pids, sig)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        table = proc_table()
        pids = {p for p in pids if p in table}
        time.sleep(0.2)
    return pids


def wait_gone(sessions: set[int], markers: Iterable[str], timeout: float) -> set[int]:
    """Wait for `live(sessions, markers)` to be empty; return what is still there after ``timeout``."""
    markers = list(markers)
    deadline = time.monotonic() + timeout
    while (left := live(sessions, markers)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


class Procs:
    """Sessions and temp dirs a test opened; `close` kills and removes all of them."""

    def __init__(self):
        self.sessions: set[int] = set()
        self.markers: list[str] = []

    def popen(self, cmd: list[str], env: dict, log: Path, cwd: str | Path | None = None) -> subprocess.Popen:
        """Start ``cmd`` in a session of its own, its output appended to ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.sessions.add(proc.pid)
        return proc

    def tempdir(self, prefix: str) -> str:
        """A new temp dir, short (Ray's unix sockets live under it), whose processes are ours."""
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.markers.append(d)
        return d

    def pids(self) -> set[int]:
        return live(self.sessions, self.markers)

    def cleanup(self) -> set[int]:
        """SIGKILL everything of ours; return what survived."""
        return kill(self.pids())

    def close(self, grace: float = 0.0) -> set[int]:
        """SIGTERM and up to ``grace`` s to exit (if ``grace``), then `cleanup`, then remove the
        temp dirs; return what survived."""
        if grace:
            kill(self.pids(), grace, signal.SIGTERM)
        left = self.cleanup()
        for marker in self.markers:
            shutil.rmtree(marker, ignore_errors=True)
        return left


def wait_or_fail(proc: subprocess.Popen, timeout: float, log: Path, what: str | None = None) -> int:
    """``proc``'s exit status; past ``timeout``, kill its session and fail with the log's tail."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        what = what or f"{' '.join(proc.args[2:5])} ..."
        pytest.fail(f"{what} ran past {timeout:.0f}s:\n{tail(log)}")


def tail(log: Path, n: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------ environment and ports


def filtered_env(foreign: Iterable[str] = RAY_VARS) -> dict[str, str]:
    """This process's environment less ``foreign`` and SERTUNE_* variables."""
    foreign = set(foreign)
    return {k: v for k, v in os.environ.items() if k not in foreign and not k.startswith("SERTUNE_")}


BIN = str(Path(sys.executable).parent)  # this interpreter's bin/: its `ray` and `sertune`, not the caller's PATH's


def clean_env(first_on_path: Iterable[str] = (), /, **extra: str) -> dict[str, str]:
    """The environment of every `sertune`, `ray` or jobs/*.sh subprocess: `filtered_env`,
    unbuffered, no usage stats, ``first_on_path`` then this interpreter's bin/ first on PATH (so
    a machine whose PATH holds no `ray` runs the tests alike), and ``extra``."""
    env = filtered_env()
    first = [*first_on_path, BIN]
    env["PATH"] = os.pathsep.join([*first, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p not in first)])
    return {**env, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def tool(name: str) -> str:
    """The path of this interpreter's ``ray`` or ``sertune``."""
    return os.path.join(BIN, name)


def sertune(*args: str) -> list[str]:
    """The command line of `sertune ARGS` run by this interpreter: the sertune it imports (the
    checkout under test, through PYTHONPATH), whether or not an entry point is installed."""
    return [sys.executable, "-m", "sertune", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))  # free on every interface: some Ray servers bind the wildcard
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """`ray start` options giving a node's agents free ports, so nodes on one machine do not collide."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
            "--min-worker-port=0", "--max-worker-port=0"]


def gcs_nodes(address: str, token: str | None = None, timeout: float = 10.0) -> list:
    """The GCS's node infos, asked directly over gRPC (no Ray driver needed), with the token (if
    any) as Ray sends it."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        reply = stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), metadata=metadata, timeout=timeout)
    return list(reply.node_info_list)


# ------------------------------------------------------------------ Ray nodes


def ray_start(procs: Procs, args: list[str], env: dict, log: Path, timeout: float = 120,
              cwd: str | Path | None = None) -> int:
    """`ray start ARGS` in a session of its own (in ``cwd``); fails the test if it does not succeed.
    Returns the session id: the node's daemons stay in that session after `ray start` exits."""
    proc = procs.popen([tool("ray"), "start", *args], env, log, cwd=cwd)
    if wait_or_fail(proc, timeout, log, f"ray start {' '.join(args[:2])} ...") != 0:
        pytest.fail(f"ray start {' '.join(args)} failed:\n{tail(log)}")
    return proc.pid


# ------------------------------------------------------------------ data


def synthetic_corpus(tmp_path_factory) -> Path:
    """The built-in corpus, 6 actors (3 per gender: the fewest a speaker split accepts), written
    once per pytest session under its base temp dir."""
    from sertune.audio.synthetic import write_corpus

    corpus = tmp_path_factory.getbasetemp() / "sertune-synthetic-6" / "corpus"
    ready = corpus.parent / "CORPUS-READY"
    if not ready.exists():
        shutil.rmtree(corpus, ignore_errors=True)
        write_corpus(corpus, actors=6, seed=0)
        ready.write_text("ok")
    return corpus


def synthetic_store(tmp_path_factory) -> str:
    """The store of `synthetic_corpus`, built once per pytest session in this process, without
    Ray (build.serial_runner): tests that only read a store need not start Ray for it."""
    from sertune.config import FeatureConfig
    from sertune.store.build import build_store, plan_build, serial_runner

    corpus = synthetic_corpus(tmp_path_factory)
    store = corpus.parent / "store"
    ready = corpus.parent / "STORE-READY"
    if not ready.exists():
        plan = plan_build(str(corpus), str(store), FeatureConfig(), force=True)
        build_store(plan, serial_runner)
        ready.write_text("ok")
    return str(store)
