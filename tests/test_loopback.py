"""The private local Ray listens on loopback only (no gRPC, agent or metrics port on the network).

A fresh interpreter starts sertune's local Ray, runs a task, and lists the TCP sockets its
process tree listens on, read from /proc (no `ss` needed); any address other than loopback fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from proctools import Procs, clean_env, tail, wait_or_fail

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

LISTENERS = textwrap.dedent('''
    import json, os, socket, time

    def listeners(root):
        """(pid, name, ip, port) of every TCP socket that ``root`` and its descendants listen on."""
        inodes = {}
        for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
            with open(path) as fh:
                for line in list(fh)[1:]:
                    f = line.split()
                    if f[3] == "0A":  # LISTEN
                        host, port = f[1].split(":")
                        raw = bytes.fromhex(host)  # 32-bit words in host order
                        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                        inodes[f[9]] = (socket.inet_ntop(family, raw), int(port, 16))
        children = {}
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{d}/stat") as fh:
                    children.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except OSError:
                pass
        pids, stack = [root], [root]
        while stack:
            for c in children.get(stack.pop(), []):
                pids.append(c)
                stack.append(c)
        out = set()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    name = fh.read().strip()
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        out.add((pid, name, *inodes[target[8:-1]]))
            except OSError:
                pass  # a process that ended meanwhile
        return out
''')

DRIVER = LISTENERS + textwrap.dedent('''
    import ray
    from sertune import ray_runtime

    with ray_runtime.connect(num_cpus=1):
        assert ray.get(ray.remote(lambda: 41).remote()) + 1 == 42
        seen = set()
        for _ in range(10):  # agents come up after the first task: look for a few seconds
            seen |= listeners(os.getpid())
            time.sleep(0.5)
        print("LISTENERS " + json.dumps(sorted(seen)))
''')


def _loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip.startswith("::ffff:127.") or ip == "::1"


def test_local_ray_listens_on_loopback_only(tmp_path):
    procs = Procs()
    try:
        log = tmp_path / "driver.log"
        proc = procs.popen([sys.executable, "-c", DRIVER], clean_env(RAY_TMPDIR=procs.tempdir("lb")), log)
        assert wait_or_fail(proc, 180, log) == 0, tail(log)
        line = next(x for x in log.read_text().splitlines() if x.startswith("LISTENERS "))
        seen = [tuple(x) for x in json.loads(line.split(" ", 1)[1])]
    finally:
        left = procs.close()
    assert not left, f"processes survived: {sorted(left)}"
    names = {name for _, name, _, _ in seen}
    assert {"gcs_server", "raylet"} <= names, f"the listing missed Ray's servers: {seen}"
    public = [s for s in seen if not _loopback(s[2])]
    assert not public, f"listening beyond loopback: {public}"
    assert "Token authentication" not in log.read_text(), tail(log)
    assert "SERTUNE_LOCAL_IP" not in log.read_text(), tail(log)  # the default is loopback-only: no warning


@pytest.mark.parametrize("ip", ["127.0.0.2", "10.0.0.5", "0.0.0.0"])
def test_a_local_ip_beyond_loopback_only_is_said_on_stderr(ip, capsys):
    from sertune import ray_runtime

    ray_runtime.warn_if_exposed(ip)
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith(f"Warning: SERTUNE_LOCAL_IP={ip}: ") and "every interface" in out.err
    for quiet in ray_runtime.LOOPBACK_ONLY:
        ray_runtime.warn_if_exposed(quiet)
    assert capsys.readouterr().err == ""
