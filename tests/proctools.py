"""Processes and loopback Ray clusters for the tests that drive `sertune`, `ray` and jobs/*.sh.

A test starts what it runs in sessions of its own (start_new_session) and kills what is left of
those sessions, their descendants and anything naming its private temp dirs -- never `ray stop`,
which would stop every Ray on the machine. Ray stays on loopback: a head on HEAD_IP, a worker
on WORKER_IP.

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
RAY_VARS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_TMPDIR")


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

    def popen(self, cmd: list[str], env: dict, log: Path, cwd: str | None = None) -> subprocess.Popen:
        """Start ``cmd`` in a session of its own (in ``cwd``), its output appended to ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=cwd)
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

    def close(self) -> set[int]:
        """`cleanup`, then remove the temp dirs; return what survived."""
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


def clean_env(**extra: str) -> dict[str, str]:
    """`filtered_env` for a `sertune` or `ray` subprocess: unbuffered, no usage stats, this
    interpreter's bin/ first on PATH, and ``extra``."""
    env = filtered_env()
    env["PATH"] = os.pathsep.join([BIN, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != BIN)])
    return {**env, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def tool(name: str) -> str:
    """The path of this interpreter's ``ray`` or ``sertune``."""
    return os.path.join(BIN, name)


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


# ------------------------------------------------------------------ data


def synthetic_store(tmp_path_factory) -> str:
    """The built-in corpus (6 actors) and its store, built once per pytest session in-process
    (no Ray), under the session's base temp dir so that every test module reuses it."""
    from sertune.config import FeatureConfig
    from sertune.store.build import build_store, extract_shard, plan_build
    from sertune.audio.synthetic import write_corpus

    base = tmp_path_factory.getbasetemp() / "sertune-synthetic-6"
    store = base / "store"
    if (base / "READY").exists():
        return str(store)
    shutil.rmtree(base, ignore_errors=True)
    write_corpus(base / "corpus", actors=6, seed=0)
    config = FeatureConfig()
    plan = plan_build(str(base / "corpus"), str(store), config, force=False)
    build_store(plan, lambda tasks: (extract_shard(*t) for t in tasks))
    (base / "READY").write_text("ok")
    return str(store)
