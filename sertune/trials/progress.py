"""The live view of a tune or sweep: what the user watches instead of Ray Tune's reporter.

On a terminal, one compact block redrawn in place, each line cut to the terminal's width (trials done / running / pending / failed,
the best validation UAR so far or the pairs done per N_att, elapsed and remaining time). Anywhere
else (CI, `ray job submit` logs, a pipe) one plain line per finished or failed trial, with no
control characters. Both end with a one-line summary. Runs in the driver as a Tune callback.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from collections import Counter

from ray import tune

REFRESH_S = 1.0  # a terminal redraw at most this often; events redraw at once


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def terminal_width() -> int:
    """The terminal's width now (read at every redraw, so a resize is honoured); COLUMNS only
    where stdout is not a terminal one can ask."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size().columns


def fit(line: str, width: int) -> str:
    """One row of the block: cut to width - 1 columns with "…" (a line that reached the last column
    would wrap on some terminals), so the redraw can move up exactly one row per line."""
    return line if len(line) <= width - 1 else line[:max(width - 2, 0)] + "…"


def _value(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _last_error_line(trial) -> str:
    """The exception line of the trial's error file (Tune writes it before calling back)."""
    try:
        with open(trial.error_file, encoding="utf-8", errors="replace") as f:
            lines = [x.strip() for x in f if x.strip()]
        return lines[-1] if lines else ""
    except (OSError, TypeError):
        return ""


class LiveView(tune.Callback):
    """``stage``: "tune" or "sweep"; ``total``: trials the run is to finish; ``max_epochs``: a
    trial that ran fewer was stopped early by ASHA; ``log_path``: where Ray's output went."""

    def __init__(self, stage: str, total: int, max_epochs: int, log_path: str | None = None, tty: bool | None = None,
                 pairs=()):
        self.stage, self.total, self.max_epochs, self.log_path = stage, total, max_epochs, log_path
        self.natt_total = Counter(a for a, _ in pairs)  # sweep: the pairs to run, per N_att
        self.natt_done: dict[str, int] = {}  # sweep: trial id -> its N_att, once done
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.t0 = time.monotonic()
        self.done: dict[str, dict] = {}  # trial id -> what it finished with
        self.failed: set[str] = set()
        self.interrupted: set[str] = set()  # ended by Ctrl-C or a kill of the driver, not finished
        self.retries = 0
        self.finished_here = 0  # trials finished in this session: the pace (a restored run holds earlier ones)
        self._observed = False
        self.number_of = lambda trial_id: None  # tune: a trial's number (the searcher's; see searcher.py)
        self.statuses: Counter = Counter()
        self._drawn, self._last_draw = 0, 0.0

    # ---------------------------------------------------------------- Tune's hooks

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.t0 = time.monotonic()
        where = f"; Ray's output: {self.log_path}" if self.log_path else ""
        if self.log_path:
            self._open_log()
        self._line(f"{self.stage}: {self.total} trials{where}")

    def _open_log(self) -> None:
        """The file the first line names must be there to open: Ray may not have logged anything yet."""
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{dt.datetime.now():%Y-%m-%d %H:%M:%S} sertune {self.stage}: {self.total} trials start\n")

    def on_step_end(self, iteration, trials, **info):
        self._observe(trials)
        if self.tty and time.monotonic() - self._last_draw >= REFRESH_S:
            self._draw()

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self.done[trial.trial_id] = result
        self.finished_here += 1
        self._observe(trials)
        self._event(self._finished_line(trial, result))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.retries += 1
        self._event(f"trial {self._name(trial)} failed; retrying from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed.add(trial.trial_id)
        self._observe(trials)
        why = _last_error_line(trial)
        self._event(f"trial {self._name(trial)} FAILED after its retries{': ' + why if why else ''}")

    def on_experiment_end(self, trials, **info):
        # Tune marks the trials it stops on an interruption TERMINATED, as it does finished ones;
        # those never reached on_trial_complete. (Trials finished in an earlier session were seen
        # by a step before; without one, nothing can be told apart.)
        if self._observed:
            self.interrupted = {t.trial_id for t in trials if t.status == "TERMINATED" and t.trial_id not in self.done}
        self._observe(trials)
        self._clear()
        self._line(self.summary())

    # ---------------------------------------------------------------- state

    def _observe(self, trials) -> None:
        """Statuses from Tune's trial list (on a resumed run it holds the finished trials too)."""
        self._observed = True
        for t in trials:
            if t.status == "TERMINATED" and t.trial_id not in self.done and t.trial_id not in self.interrupted:
                self.done[t.trial_id] = t.last_result or {}
            if t.status == "ERROR":
                self.failed.add(t.trial_id)
        self.statuses = Counter(t.status for t in trials if t.trial_id not in self.done and t.trial_id not in self.failed)
        if self.stage == "sweep":
            self.natt_done.update({t.trial_id: t.config["pair"][0] for t in trials if t.trial_id in self.done})

    def stopped_early(self) -> int:
        return sum(r.get("training_iteration", self.max_epochs) < self.max_epochs for r in self.done.values())

    def best(self) -> float | None:
        values = [r["best_val_uar"] for r in self.done.values() if "best_val_uar" in r]
        return max(values) if values else None

    def counts(self) -> str:
        running = self.statuses["RUNNING"] + self.statuses["PAUSED"]
        pending = max(0, self.total - len(self.done) - len(self.failed) - len(self.interrupted) - running)
        early = f" ({self.stopped_early()} stopped early)" if self.stage == "tune" else ""
        cut = f", {len(self.interrupted)} interrupted" if self.interrupted else ""
        return (f"{len(self.done)}/{self.total} done{early}, {running} running, {pending} pending{cut}, "
                f"{len(self.failed)} failed")

    def left(self) -> float | None:
        """Seconds still to go at this session's pace (None before its first finished trial or
        when nothing is left). Under ASHA a rough guide: stopped trials are quicker."""
        remaining = self.total - len(self.done) - len(self.failed) - len(self.interrupted)
        if not self.finished_here or remaining <= 0:
            return None
        return (time.monotonic() - self.t0) / self.finished_here * remaining

    def timing(self) -> str:
        left = self.left()
        return f"{clock(time.monotonic() - self.t0)} elapsed" + (f", about {clock(left)} left" if left else "")

    def summary(self) -> str:
        ended = "interrupted after" if self.interrupted else "finished in"
        text = f"{self.stage} {ended} {clock(time.monotonic() - self.t0)}: {self.counts()}"
        if self.retries:
            text += f", {self.retries} retried"
        best = self.best()
        return text + (f"; best validation UAR {best:.4f}" if best is not None and self.stage == "tune" else "")

    # ---------------------------------------------------------------- text

    def _name(self, trial) -> str:
        if self.stage == "sweep":
            n_att, seed = trial.config["pair"]
            return f"N_att={n_att} seed={seed}"
        number = self.number_of(trial.trial_id)  # the number of the Optuna study, trials.parquet and search.png
        return trial.trial_id if number is None else f"{number} ({trial.trial_id})"

    def _finished_line(self, trial, result: dict) -> str:
        n = f"{len(self.done)}/{self.total}"
        if self.stage == "sweep":
            row = result.get("row")
            uar = ""
            if row:
                import json

                r = json.loads(row)
                uar = f": test UAR {r['uar']:.4f} (validation {r['val_uar']:.4f}, best epoch {r['best_epoch']})"
            return f"{n} {self._name(trial)}{uar}"
        epochs = result.get("training_iteration", 0)
        stop = f"stopped by ASHA at epoch {epochs}" if epochs < self.max_epochs else f"all {epochs} epochs"
        params = " ".join(f"{k}={_value(v)}" for k, v in sorted(trial.config.items()))
        best = self.best()
        return (f"{n} trial {self._name(trial)}: validation UAR {result.get('best_val_uar', float('nan')):.4f} "
                f"({stop}) {params}; best so far {best:.4f}")

    def status_lines(self) -> list[str]:
        lines = [f"{self.stage}: {self.counts()} | {self.timing()}"]
        best = self.best()
        if self.stage == "tune" and best is not None:
            lines[0] += f" | best validation UAR {best:.4f}"
        if self.stage == "sweep" and self.natt_total:
            done = Counter(self.natt_done.values())
            lines.append("  pairs done per N_att: " + "  ".join(f"{a}: {done[a]}/{n}" for a, n in sorted(self.natt_total.items())))
        return lines

    # ---------------------------------------------------------------- output

    def _event(self, text: str) -> None:
        if self.tty:
            self._clear()
            self._line(text)
            self._draw()
        else:
            left = self.left()
            self._line(f"[{clock(time.monotonic() - self.t0)}] {text}" + (f" (about {clock(left)} left)" if left else ""))

    def _line(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def _draw(self) -> None:
        self._clear()
        lines = self.status_lines()
        width = terminal_width()
        sys.stdout.write("".join(fit(line, width) + "\x1b[K\n" for line in lines))
        sys.stdout.flush()
        self._drawn, self._last_draw = len(lines), time.monotonic()

    def _clear(self) -> None:
        """Move the cursor back over the block drawn last (the next write replaces it)."""
        if self.tty and self._drawn:
            sys.stdout.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
