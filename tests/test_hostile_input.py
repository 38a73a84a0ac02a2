"""Issue 13 (points 6, 7, 12, 13, 14): code planted in an experiment folder does not run, a
diverging run stops with one line, and bad spaces, options, configuration files and locations
are refused with one line before Ray starts or anything is written."""

from __future__ import annotations

import json
import math
import pickle
import tempfile
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sertune.cli import cli
from sertune.config import TrainConfig
from sertune.errors import ConfigError, TrialError
from sertune.search_space import load_space


def run(*args, timeout: float = 300):
    """The CLI in-process; a run that hangs (a trial no node can hold) fails instead of hanging the suite."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=CliRunner().invoke(cli, list(map(str, args)))), daemon=True)
    t.start()
    t.join(timeout)
    assert "r" in out, f"sertune {' '.join(map(str, args[:1]))} still running after {timeout:.0f} s"
    return out["r"]


def one_line_error(r, code: int, message: str) -> None:
    assert r.exit_code == code and message in r.output, (r.exit_code, r.output)
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output


class Payload:
    """Unpickling this creates ``marker``: stands for any code a planted pickle could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """A folder nobody can write in: chmod where that binds (not root), else sysfs."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        tempfile.TemporaryFile(dir=d).close()
    except OSError:
        yield d
    else:  # root ignores modes; sysfs refuses new files even to root
        yield Path("/sys")
    d.chmod(0o755)


# ------------------------------------------------------------------ 6: no code from the experiment folder


def test_planted_training_state_is_not_executed(tmp_path, monkeypatch):
    from ray import tune

    from sertune.trials import trainable

    ckpt, marker = tmp_path / "checkpoint", tmp_path / "PAYLOAD-RAN"
    ckpt.mkdir()
    torch.save({"epoch": Payload(marker)}, ckpt / trainable.STATE_FILE)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(ckpt)))
    with pytest.raises(TrialError, match="not a training state sertune wrote"):
        trainable._resume_state()  # what a trial retried or restored from that checkpoint calls
    assert not marker.exists()


def test_training_state_round_trips_as_tensors_and_plain_values(synth_store, tmp_path):
    from sertune.store.load import load_store
    from sertune.training.loop import Training
    from sertune.trials.trainable import STATE_FILE, load_state, save_state

    run_ = Training(TrainConfig(epochs=2, n_att=2, hidden_size=8, batch_size=64), load_store(synth_store))
    run_.step()
    save_state(run_, str(tmp_path))
    torch.load(tmp_path / STATE_FILE, weights_only=True)  # what a planted file must pass
    state = load_state(str(tmp_path))
    assert state["epoch"] == 1 and state["history"] == run_.history
    assert torch.equal(state["rng"], run_.state_dict()["rng"])
    resumed = Training(TrainConfig(epochs=2, n_att=2, hidden_size=8, batch_size=64), load_store(synth_store))
    resumed.load_state_dict(state)
    assert resumed.step()["val_uar"] == run_.step()["val_uar"]


def test_tune_restores_only_an_experiment_sertune_created(synth_store, tmp_path):
    exp, marker = tmp_path / "exp", tmp_path / "PAYLOAD-RAN"
    (exp / "tune" / "tune").mkdir(parents=True)
    (exp / "tune" / "tune" / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--num-samples", 1, "--epochs", 1)
    one_line_error(r, 2, "without a readable request.json")
    assert not marker.exists()


# ------------------------------------------------------------------ 7: non-finite loss, inf learning rate


def test_nan_features_stop_the_run_naming_the_epoch(synth_store):
    from sertune.store.load import load_store
    from sertune.training.loop import train

    fs = load_store(synth_store)
    fs.frames[int(fs.offsets[3]) + 5, 0] = math.nan  # one bad frame poisons the training statistics
    with pytest.raises(TrialError, match=r"epoch 1: the training loss is nan .*bad features"):
        train(TrainConfig(epochs=2), fs)


def test_diverging_lr_is_one_line_exit_7_and_writes_nothing(synth_store, tmp_path):
    r = run("train", "--store", synth_store, "--epochs", 2, "--lr", 1e30, "--out", tmp_path / "out")
    one_line_error(r, 7, "epoch 1: the training loss is nan (not finite); likely a learning rate too high (lr 1e+30)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--lr", "nan"), ("--weight-decay", "inf")])
def test_non_finite_training_numbers_are_refused(synth_store, tmp_path, flag, value):
    r = run("train", "--store", synth_store, flag, value, "--out", tmp_path / "out")
    one_line_error(r, 2, "must be a finite number")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 12: search spaces


BAD_SPACES = [
    ("lr: {type: loguniform, low: 1.0e-2, high: 1.0e-4}", "lr: low 0.01 must be below high 0.0001 (a plain value fixes a knob)"),
    ("batch_size: {type: choice, values: []}", "batch_size: values must be a non-empty list"),
    ("dropout: {type: uniform, low: 0.0, high: 1.5}", "dropout: high 1.5: dropout must be in [0, 1)"),
    ("batch_size: {type: choice, values: [0, 16]}", "batch_size: value 0: batch_size must be >= 1"),
    ("lr: abc", "lr: 'abc' is not a number"),
    ("lr: {type: loguniform, low: abc, high: 1.0e-2}", "lr: low 'abc': 'abc' is not a number"),
    ("lr: .inf", "lr must be a finite number > 0"),
    ("cycles: {type: int, low: 1, high: 4}", "cycles: high 4: cycles must be between 1 and epochs (2)"),
    ("cycles: {type: int, low: 1.5, high: 2}", "cycles: low 1.5: 1.5 is not a whole number"),
    ("batch_size: 16.7", "batch_size: 16.7 is not a whole number"),
    ("lr: {type: uniform, low: 0.001, hi: 0.01}", "lr: a uniform spec has exactly high, low (got hi, low)"),
    ("weight_decay: {type: loguniform, low: 0, high: 0.1}", "weight_decay: a loguniform range needs low > 0 (got 0.0)"),
]


@pytest.mark.parametrize("text, message", BAD_SPACES)
def test_bad_search_space_is_refused(tmp_path, text, message):
    space = tmp_path / "space.yaml"
    space.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_space(str(space), TrainConfig(epochs=2))
    assert str(e.value) == f"{space}: {message}"


def test_default_space_fits_a_short_budget():
    space = load_space(None, TrainConfig(epochs=2))
    assert space["cycles"] == {"type": "int", "low": 1, "high": 2}
    assert load_space(None, TrainConfig())["cycles"]["high"] == 4


def test_bad_space_leaves_no_experiment_behind(synth_store, tmp_path):
    space, exp = tmp_path / "space.yaml", tmp_path / "exp"
    space.write_text("dropout: {type: uniform, low: 0.0, high: 1.5}\n")
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 2, "--epochs", 2)
    one_line_error(r, 2, "dropout: high 1.5: dropout must be in [0, 1)")
    assert not exp.exists()  # no request.json, no tuner.pkl: the corrected rerun is not refused


# ------------------------------------------------------------------ 13: trials larger than the local Ray


@pytest.mark.parametrize("flag, value, message", [
    ("--cpus-per-trial", 3, "--cpus-per-trial 3 but the local Ray has only 2 CPU(s)"),
    ("--gpus-per-trial", 2, "--gpus-per-trial 2 but the local Ray has only 1 GPU(s)"),
])
def test_trial_larger_than_the_local_ray_is_refused(synth_store, tmp_path, ray_local, flag, value, message):
    r = run("sweep", "--store", synth_store, "--experiment-dir", tmp_path, "--no-tuned", "--n-att", 1, "--seeds", 1,
            "--epochs", 1, flag, value)
    one_line_error(r, 2, message)
    assert not (tmp_path / "sweep").exists()


def test_trial_larger_than_any_cluster_node_is_a_warning(ray_local):
    from sertune.preflight import check_trial_resources

    warnings = []
    check_trial_resources(4, 0, local=False, warn=warnings.append)
    assert warnings == ["--cpus-per-trial 4 but no node has more than 2 CPU(s): trials wait until the cluster "
                        "has such a node (an autoscaler may add one)"]


# ------------------------------------------------------------------ 14: one line instead of a traceback


def test_unwritable_locations_are_refused_before_work(synth_store, synth_corpus, tmp_path, readonly_dir):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    cases = [
        ("prepare", "--data", synth_corpus, "--store", "{}/store"),
        ("train", "--store", synth_store, "--epochs", 1, "--out", "{}/out"),
        ("tune", "--store", synth_store, "--experiment-dir", "{}/exp", "--num-samples", 1, "--epochs", 1),
        ("sweep", "--store", synth_store, "--experiment-dir", "{}/exp", "--no-tuned", "--seeds", 1, "--epochs", 1),
    ]
    for args in cases:
        option = args[-2] if args[-2].startswith("--") and "{}" in str(args[-1]) else next(
            a for a, b in zip(args, args[1:]) if "{}" in str(b))
        for where, problem in ((afile, f"{afile} is a file, not a folder"), (readonly_dir, f"cannot write in {readonly_dir}")):
            r = run(*(str(a).format(where) for a in args))
            one_line_error(r, 2, f"{option} {where}/")
            assert problem in r.output, r.output
    assert not list(tmp_path.glob("**/.sertune-write-check-*"))


def test_report_out_unwritable(tmp_path, readonly_dir):
    table = tmp_path / "r.csv"
    table.write_text("n_att,seed,uar\n1,0,0.5\n1,1,0.6\n")
    r = run("report", "--results", table, "--out", readonly_dir / "report")
    one_line_error(r, 2, f"--out {readonly_dir}/report: cannot write in {readonly_dir}")


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "a configuration maps training option names to values (got a list)"),
    ("null", "(got null)"),
    ('"lr=0.1"', "(got a string)"),
    ('{"config": {"batch_size": 16.7}}', "batch_size: 16.7 is not a whole number"),
    ('{"lr": "abc"}', "lr: 'abc' is not a number"),
    ('{"split_seed": -1}', "seed, split_seed and threads must be >= 0"),
    ('{"hidden_size": 100000}', "hidden_size must be between 1 and 4096"),
])
def test_bad_config_file_is_one_line(synth_store, tmp_path, content, message):
    config = tmp_path / "config.json"
    config.write_text(content)
    r = run("sweep", "--store", synth_store, "--experiment-dir", tmp_path / "exp", "--config", config, "--seeds", 1)
    one_line_error(r, 2, message)
    assert r.output.startswith(f"Error: {config}: ")
    assert not (tmp_path / "exp").exists()


def test_config_values_keep_their_meaning():
    cfg = TrainConfig.from_dict({"batch_size": 16.0, "lr": "1e-3", "epochs": "7"})
    assert (cfg.batch_size, cfg.lr, cfg.epochs) == (16, 1e-3, 7)
    for bad in ({"epochs": True}, {"lr": None}, {"split": 3}):
        with pytest.raises(ConfigError):
            TrainConfig.from_dict(bad)


@pytest.mark.parametrize("args, code, message", [
    (["train", "--hidden-size", 100000], 2, "hidden_size must be between 1 and 4096"),
    (["train", "--split-seed", -1], 2, "-1 is not in the range x>=0"),
    (["prepare", "--hop-ms", "nan"], 2, "feature parameters: hop_ms must be a finite number (got nan)"),
    (["prepare", "--win-ms", "inf"], 2, "feature parameters: win_ms must be a finite number (got inf)"),
])
def test_bad_numbers_are_one_line(synth_store, synth_corpus, tmp_path, args, code, message):
    source = ["--data", synth_corpus, "--store", tmp_path / "s"] if args[0] == "prepare" else ["--store", synth_store,
                                                                                                 "--out", tmp_path / "s"]
    r = run(args[0], *source, *args[1:])
    assert r.exit_code == code and message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_refused_up_front(synth_store, tmp_path):
    r = run("train", "--store", tmp_path / "no-store-yet", "--device", "cuda", "--out", tmp_path / "out")
    one_line_error(r, 2, "--device cuda: this torch sees no CUDA device")  # before the store is even opened
    r = run("sweep", "--store", synth_store, "--experiment-dir", tmp_path / "exp", "--no-tuned", "--device", "cuda",
            "--seeds", 1, "--n-att", 1, "--epochs", 1, "--gpus-per-trial", 0)
    one_line_error(r, 2, "--device cuda: this torch sees no CUDA device")
    assert not (tmp_path / "exp" / "sweep").exists()


def test_parquet_named_csv_is_one_line(synth_store, tmp_path):
    import pandas as pd

    table = tmp_path / "results.csv"
    pd.DataFrame({"n_att": [1, 1], "seed": [0, 1], "uar": [0.5, 0.6]}).to_parquet(table)
    r = run("report", "--results", table, "--out", tmp_path / "report")
    one_line_error(r, 5, f"{table}: not a readable CSV file")
    r = run("sweep", "--store", synth_store, "--experiment-dir", tmp_path / "exp", "--no-tuned", "--results", table)
    one_line_error(r, 5, f"{table}: not a readable CSV file")
