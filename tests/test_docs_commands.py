"""The commands docs/results/run.sh gives a reader parse: every option it names exists and takes
the value given. The script runs under bash with `sertune` replaced by a recorder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest

from sertune.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SEP = "\x1e"


def _recorded(script: Path, tmp_path: Path) -> list[list[str]]:
    rec = tmp_path / "calls"
    recorder = f'sertune() {{ printf "%s\\0" "$@" >> {rec}; printf "{SEP}" >> {rec}; }}; export -f sertune'
    data, work = tmp_path / "data", tmp_path / "work"
    subprocess.run(["bash", "-c", f'{recorder}; bash {script} {data} {work}'], check=True, cwd=tmp_path,
                   capture_output=True, text=True, timeout=60)
    calls = [c.split("\0")[:-1] for c in rec.read_text().split(SEP) if c]
    return calls


def test_every_sertune_command_of_the_results_script_parses(tmp_path):
    calls = _recorded(ROOT / "docs" / "results" / "run.sh", tmp_path)
    names = [c[0] for c in calls]
    assert {"recipe", "prepare", "train", "compare", "tune", "sweep", "report"} <= set(names), names
    for args in calls:
        command = cli.commands[args[0]]
        try:
            command.make_context(args[0], args[1:])
        except click.ClickException as e:
            pytest.fail(f"docs/results/run.sh: `sertune {' '.join(args)}`: {e.format_message()}")
