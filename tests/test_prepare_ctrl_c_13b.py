"""Ctrl-C during `sertune prepare`: the command aborts like any click command, Ray's own
processes go with it, and no store (or staging folder) is left behind.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group; the test does the same
to the session it started `sertune prepare` in (its own, with a private Ray temp dir).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest
from proctools import Procs, clean_env, cmdline, tail, wait_gone, wait_or_fail

PROGRESS = re.compile(r"MFCC: (\d+)/(\d+) utterances")  # a log: a line per tenth done


def _progress(log) -> tuple[int, int] | None:
    found = PROGRESS.findall(tail(log, 2000))
    return tuple(map(int, found[-1])) if found else None


@pytest.mark.slow
def test_ctrl_c_during_prepare_aborts_and_leaves_nothing(real_16k, tmp_path):
    procs = Procs()
    ray_tmp = procs.tempdir("cc")
    store, log = tmp_path / "store", tmp_path / "prepare.log"
    cmd = [sys.executable, "-m", "sertune", "prepare", "--data", str(real_16k), "--store", str(store), "--num-cpus", "2"]
    try:
        proc = procs.popen(cmd, clean_env(RAY_TMPDIR=ray_tmp), log)
        deadline = time.monotonic() + 240
        # The first progress line: Ray is up and its workers are extracting. Ctrl-C at once: once the
        # first shard has compiled numba's code (~10 s), the rest of the corpus takes ~2 s on 2 CPUs.
        while (seen := _progress(log)) is None:
            assert proc.poll() is None, f"prepare ended (rc {proc.returncode}) before extracting:\n{tail(log)}"
            assert time.monotonic() < deadline, f"no extraction in 240 s:\n{tail(log)}"
            time.sleep(0.05)
        assert seen[0] < seen[1], f"the whole corpus was done before Ctrl-C could be sent: {seen}"
        os.killpg(proc.pid, signal.SIGINT)
        rc = wait_or_fail(proc, 120, log, "sertune prepare after SIGINT")
        out = tail(log, 20000)
        assert rc == 1 and out.rstrip().endswith("Aborted!"), out
        assert "Check failed" not in out and "Traceback" not in out, out
        left = wait_gone({proc.pid}, [ray_tmp], timeout=30)
        assert not left, "left running after Ctrl-C: " + "; ".join(cmdline(p)[:120] for p in left)
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("store")]
    finally:
        survivors = procs.close()
    assert not survivors, f"processes survived SIGKILL: {sorted(survivors)}"
