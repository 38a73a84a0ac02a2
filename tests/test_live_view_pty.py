"""The live view on a real terminal: a child process drives LiveView (real Tune Trial objects,
no Ray run) on the slave side of a pseudo-terminal; everything it writes is read from the master
side into a pyte screen of the same size, and the screen is checked after every redraw.

What must hold at any width, and across a resize: the redrawn block is exactly one row per line
(lines too long for the terminal cut to width - 1 columns, ending in "…"), so redrawing it leaves
no stale rows; the permanent lines (the first line, each trial's line, the summary) are there once
each, in full (the terminal wraps those: they are never redrawn)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

pyte = pytest.importorskip("pyte")

ROWS = 80

# Runs in the child, on the pty. After each step it reports, on the `ready` pipe, how many bytes
# the terminal will have received (ONLCR makes each "\n" two), the permanent lines written so far
# and the block last drawn; then it waits for the parent's go-ahead on the `go` pipe.
CHILD = r"""
import json, os, sys
from ray.tune.experiment.trial import Trial
from sertune.trials import progress
from sertune.trials.progress import LiveView

ready, go, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

class Terminal:
    def __init__(self):
        self.sent = 0
    def write(self, s):
        b = s.encode()
        view = memoryview(b)
        while view:
            view = view[os.write(1, view):]
        self.sent += len(b) + b.count(b"\n")
    def flush(self):
        pass
    def isatty(self):
        return True
    def fileno(self):
        return 1

sys.stdout = Terminal()
progress.REFRESH_S = 0.0  # every step redraws
permanent, block = [], []
view = LiveView("tune", 1_000_000, 4, log_path, tty=True)  # a large total: a status line wider than 120 columns
line, status_lines = view._line, view.status_lines
def record_line(text):
    permanent.append(text)
    line(text)
def record_block():
    block[:] = status_lines()
    return list(block)
view._line, view.status_lines = record_line, record_block

def step():
    msg = {"sent": sys.stdout.sent, "permanent": permanent, "block": block if view._drawn else []}
    os.write(ready, (json.dumps(msg) + "\n").encode())
    assert os.read(go, 1) == b"g"

knob = "augmentation_policy_of_a_rather_long_name"
trials = [Trial("train_trial", trial_id=f"{i:x}7c0ffee{i}", experiment_tag=f"{i + 1}_lr={10 ** -(i + 2)}", stub=True,
                config={"lr": 10 ** -(i + 2), "batch_size": 16 * (i + 1), knob: "specaugment-" + "wide-" * (6 + i)})
          for i in range(4)]
def finish(t, epochs, uar):
    t.update_last_result({"training_iteration": epochs, "best_val_uar": uar})
    t.set_status(Trial.TERMINATED)
    view.on_trial_complete(0, trials, t)

view.setup()
step()
for t in trials[:3]:
    t.set_status(Trial.RUNNING)
view.on_step_end(0, trials)
step()
finish(trials[0], 4, 0.4321)
step()
view.on_trial_recover(0, trials, trials[1])
view.on_step_end(0, trials)
step()  # the resize comes here
view.on_step_end(0, trials)
step()
finish(trials[1], 2, 0.3)
trials[3].set_status(Trial.RUNNING)
view.on_step_end(0, trials)
step()
finish(trials[2], 4, 0.5)
finish(trials[3], 1, 0.2)
step()
view.on_experiment_end(trials)
step()
"""


def _set_size(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))


def _rows(text: str, columns: int) -> list[str]:
    """A permanent line as the terminal shows it: wrapped every ``columns`` characters."""
    return [text[i:i + columns] for i in range(0, len(text), columns)] or [""]


def _cut(text: str, columns: int) -> str:
    return text if len(text) <= columns - 1 else text[:columns - 2] + "…"


class Pty:
    """The child on a pty, the master side read into a pyte screen."""

    def __init__(self, columns: int, tmp_path):
        self.master, slave = pty.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] |= termios.OPOST | termios.ONLCR  # a terminal's usual output settings, explicitly
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        _set_size(self.master, columns)
        self.screen = pyte.Screen(columns, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.received = 0
        ready_r, ready_w = os.pipe()
        go_r, self.go = os.pipe()
        self.ready = os.fdopen(ready_r, "rb", buffering=0)
        self.err = open(tmp_path / "child.err", "w+")
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        log = tmp_path / ("a-folder-of-a-long-name-" * 3) / "logs" / "tune-20260101-000000.log"
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ready_w), str(go_r), str(log)],
                                     stdin=slave, stdout=slave, stderr=self.err, pass_fds=(ready_w, go_r),
                                     env=env, start_new_session=True)
        for fd in (slave, ready_w, go_r):
            os.close(fd)
        self.pending = b""

    def _read_master(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child has closed the slave
            chunk = b""
        self.received += len(chunk)
        self.stream.feed(chunk)

    def report(self, timeout: float = 60.0) -> dict:
        """The child's next report, once the screen holds everything it wrote before it."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.master, self.ready], [], [], max(left, 0))
            assert r or left > 0, f"no report from the child in {timeout} s: {self.child_error()}"
            if self.master in r:
                self._read_master()
            if self.ready in r:
                chunk = self.ready.read(65536)
                assert chunk, f"the child ended early: {self.child_error()}"
                self.pending += chunk
        msg, self.pending = self.pending.split(b"\n", 1)
        report = json.loads(msg)
        while self.received < report["sent"]:
            r, _, _ = select.select([self.master], [], [], max(deadline - time.monotonic(), 0))
            assert r, f"the terminal got {self.received} of {report['sent']} bytes"
            self._read_master()
        return report

    def go_on(self) -> None:
        os.write(self.go, b"g")

    def resize(self, columns: int) -> None:
        _set_size(self.master, columns)
        self.screen.resize(ROWS, columns)

    def child_error(self) -> str:
        self.err.flush()
        self.err.seek(0)
        return self.err.read()[-3000:]

    def close(self) -> int:
        os.close(self.go)
        try:
            rc = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)
            self.ready.close()
            self.err.close()
        return rc


def _expected(earlier: list[str], permanent: list[str], block: list[str], columns: int, cut_at: int) -> list[str]:
    """The screen's rows: the permanent lines (those written before a resize as the wider terminal
    wrapped them, cut by the narrower one), then the block, one row a line, then nothing."""
    rows = [r[:columns] for text in earlier for r in _rows(text, cut_at)]
    rows += [r for text in permanent[len(earlier):] for r in _rows(text, columns)]
    rows += [_cut(line, columns) for line in block]
    rows = [r.rstrip() for r in rows]  # as the screen's rows are read: a wrapped row may end in a space
    return rows + [""] * (ROWS - len(rows))


@pytest.mark.parametrize("widths", [(120,), (60,), (120, 60)], ids=["120", "60", "120-then-60"])
def test_the_block_fits_the_terminal_and_redraws_leave_no_stale_rows(widths, tmp_path):
    term = Pty(widths[0], tmp_path)
    columns, cut_at, earlier, resized = widths[0], widths[0], [], False
    reports, longest = 0, 0
    try:
        while True:
            report = term.report()
            reports += 1
            screen = [row.rstrip() for row in term.screen.display]
            expected = _expected(earlier, report["permanent"], report["block"], columns, cut_at)
            assert screen == expected, (f"after report {reports} at {columns} columns:\n" + "\n".join(
                f"{i:2} {'  ' if a == b else '!='} {a!r}\n   want {b!r}" for i, (a, b) in enumerate(zip(screen, expected)) if a or b))
            for line in report["block"]:  # the block: one row a line, cut where too long
                row = _cut(line, columns)
                assert screen.count(row) == 1 and len(row) < columns
                assert row.endswith("…") == (len(line) >= columns)
            written_here = "".join(term.screen.display)  # rows padded to the width: a wrapped line reads on
            for text in report["permanent"][len(earlier):]:  # every line written at this width there once, in full
                assert written_here.count(text) == 1, text
            longest = max(longest, *map(len, report["block"] + report["permanent"]))
            final = not report["block"] and any(t.startswith("tune finished in") for t in report["permanent"])
            if len(widths) > 1 and not resized and reports == 4:
                earlier, cut_at = list(report["permanent"]), columns
                columns, resized = widths[1], True
                term.resize(columns)
            term.go_on()
            if final:
                break
        assert longest > 120, "no line wider than 120 columns"
    finally:
        rc = term.close()
    assert rc == 0, term.child_error()
    assert reports == 8
