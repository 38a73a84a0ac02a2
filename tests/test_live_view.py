"""What a user watches: the live view of tune and sweep (here: not a terminal, so one plain line
per event), the Optuna study in its RDB storage, TensorBoard's per-epoch scalars, and the
terminal block (redrawn in place) of the live view itself."""

from __future__ import annotations

import glob
import io
import json
import re
import struct
from types import SimpleNamespace

import optuna
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sertune.cli import cli
from sertune.trials.progress import LiveView

EVENT = r"\[\d+:\d\d\] "
LEFT = r"( \(about \d+:\d\d left\))?"  # after a trial's line while others remain
TUNE_LINES = [
    r"tune: 4 trials; Ray's output: .*/logs/tune-\d{8}-\d{6}\.log",
    EVENT + r"\d/4 trial \d \(\w+\): validation UAR 0\.\d{4} \((stopped by ASHA at epoch [123]|all 4 epochs)\) "
            r"batch_size=(16|32) cycles=1 dropout=\S+ lr=\S+ weight_decay=\S+; best so far 0\.\d{4}" + LEFT,
    r"tune finished in \d+:\d\d: 4/4 done \(\d stopped early\), 0 running, 0 pending, 0 failed; best validation UAR 0\.\d{4}",
    r"best validation UAR 0\.\d{4} \(trial \d\) with lr=\S+, batch_size=\d+, dropout=\S+, weight_decay=\S+, cycles=1",
    r"hyperparameter importances( \(over \d+ full-budget trials\): .*|: \d+ full-budget trial\(s\): too few for importances)",
    r"-> .*/tune/best_config\.json  \(all trials: .*/tune/trials\.parquet; the search drawn: .*/tune/search\.png\)",
    r"Optuna study 'exp': optuna-dashboard sqlite:////.*/exp/tune/optuna\.db",
]
SWEEP_LINES = [
    r"sweep: 2 trials; Ray's output: .*/logs/sweep-\d{8}-\d{6}\.log",
    EVENT + r"[12]/2 N_att=[12] seed=0: test UAR 0\.\d{4} \(validation 0\.\d{4}, best epoch [12]\)" + LEFT,
    r"sweep finished in \d+:\d\d: 2/2 done, 0 running, 0 pending, 0 failed",
    r".*/sweep/results\.parquet: 2 of 2 pairs done \(2 run now, 0 already there\)",
]


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def check_lines(output: str, patterns: list[str]) -> list[str]:
    """Every line is one the live view or the command prints; no Ray boxes, JSON, warnings or escapes."""
    lines = output.splitlines()
    for line in lines:
        assert line.isprintable(), f"control characters in {line!r}"
        assert not re.search(r"[╭╰│{}]|WARNING|Warning|INFO|Trial status", line), f"Ray's output in the view: {line!r}"
        assert any(re.fullmatch(p, line) for p in patterns), f"unexpected line {line!r} in:\n{output}"
    return lines


def events(event_file: str) -> list:
    """The Event protos of a TensorBoard event file (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    found, data, pos = [], open(event_file, "rb").read(), 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        found.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
        pos += 12 + length + 4
    return found


def scalar_tags(event_file: str) -> set[str]:
    return {v.tag for e in events(event_file) for v in e.summary.value if v.HasField("simple_value")}


def hparams(event_file: str) -> tuple[dict, set[str]]:
    """The HParams TensorBoard shows for a trial: its values, and the metrics declared beside them."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    values, metrics = {}, set()
    for v in (v for e in events(event_file) for v in e.summary.value):
        if v.metadata.plugin_data.plugin_name != "hparams":
            continue
        data = HParamsPluginData.FromString(v.metadata.plugin_data.content)
        for k, x in data.session_start_info.hparams.items():
            values[k] = x.number_value if x.HasField("number_value") else x.string_value
        metrics |= {m.name.tag for m in data.experiment.metric_infos}
    return values, metrics


NUMBERED = re.compile(r"\[\d+:\d\d\] \d+/4 trial (\d+) \((\w+)\): validation UAR .* lr=(\S+) weight_decay=\S+; best so far .*")


def search_drawn(exp):
    """search.png's figure, drawn from the tables `sertune tune` wrote (as cli/tune.py draws it)."""
    from sertune.report.search import search_figure

    best = json.loads((exp / "tune" / "best_config.json").read_text())
    trials, curves = pd.read_parquet(exp / "tune" / "trials.parquet"), pd.read_parquet(exp / "tune" / "curves.parquet")
    return search_figure(curves, trials, best["trial_id"], 4, [1, 2], "lr", "test")


def check_numbers(exp, output: str) -> dict[str, int]:
    """Every place's number for each trial agrees; returns Ray trial id -> number."""
    trials = pd.read_parquet(exp / "tune" / "trials.parquet")
    assert trials.columns[0] == "trial" and trials["trial"].tolist() == list(range(4)), trials[["trial", "trial_id"]]
    number = dict(zip(trials["trial_id"], trials["trial"]))
    lr = dict(zip(trials["trial"], trials["config/lr"]))

    console = {m.group(2): (int(m.group(1)), float(m.group(3))) for m in map(NUMBERED.fullmatch, output.splitlines()) if m}
    assert len(console) == 4, output
    for tid, (n, shown_lr) in console.items():
        assert number[tid] == n and shown_lr == float(f"{lr[n]:.3g}"), (tid, n, shown_lr, trials)

    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{exp}/tune/optuna.db")
    assert [t.number for t in study.trials] == list(range(4))
    assert study.metric_names == ["best_val_uar"]
    for t in study.trials:  # trial.number is the console's and the table's, for the trial that ran with that lr
        assert t.number == number[t.user_attrs["ray_trial_id"]] and t.params["lr"] == lr[t.number]
        assert t.user_attrs["n_att"] == 1 and t.user_attrs["seed"] == 0 and t.state.is_finished()

    curves = pd.read_parquet(exp / "tune" / "curves.parquet")
    assert list(curves.columns[:2]) == ["trial", "trial_id"]
    assert dict(zip(curves["trial_id"], curves["trial"])) == number

    best = json.loads((exp / "tune" / "best_config.json").read_text())
    assert best["trial"] == number[best["trial_id"]] and best["config"]["lr"] == lr[best["trial"]]
    fig = search_drawn(exp)
    curves_ax, order_ax, *knob_ax = fig.axes
    assert curves_ax.get_legend().get_texts()[0].get_text() == f"best: trial {best['trial']}"
    result = dict(zip(trials["trial"], trials["best_val_uar"]))
    drawn = {int(x): y for c in order_ax.collections for x, y in c.get_offsets()}  # x: the trial's number
    assert drawn == pytest.approx(result)
    if knob_ax:  # the knob's points, each labelled with its trial's number
        (ax,) = knob_ax
        knob = trials[f"config/{ax.get_xlabel()}"]
        assert {int(t.get_text()): float(t.xy[0]) for t in ax.texts} == dict(zip(trials["trial"], knob))
    return number


def test_tune_live_view_optuna_study_and_tensorboard(synth_store, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("batch_size: {type: choice, values: [16, 32]}\ncycles: 1\n")
    exp, mlflow_db = tmp_path / "exp", f"sqlite:///{tmp_path}/mlflow.db"
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 4,
            "--epochs", 4, "--grace-period", 1, "--reduction-factor", 2, "--max-concurrent", 2, "--mlflow", mlflow_db)
    assert r.exit_code == 0, r.output
    lines = check_lines(r.output, TUNE_LINES)
    assert len([x for x in lines if re.match(EVENT, x)]) == 4, r.output
    assert (exp / "logs").is_dir()

    trials = pd.read_parquet(exp / "tune" / "trials.parquet")
    types = {f.name: str(f.type) for f in pq.read_schema(exp / "tune" / "trials.parquet")}
    assert types["trial"] == "int64" and types["stopped_early"] == types["should_checkpoint"] == "bool", types
    assert types["config/lr"] == "double" and types["config/batch_size"] == "int64", types
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{exp}/tune/optuna.db")
    stored = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert set(stored) == set(trials["trial_id"]), "the study does not hold every trial once"
    for _, row in trials.iterrows():
        t = stored[row["trial_id"]]
        assert t.user_attrs["epochs"] == row["training_iteration"]
        if row["stopped_early"]:
            assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["stopped_by"] == "ASHA"
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE and t.value == pytest.approx(row["best_val_uar"])
        assert max(t.intermediate_values) == row["training_iteration"]  # the per-epoch values, the last included
    best = json.loads((exp / "tune" / "best_config.json").read_text())
    curves = pd.read_parquet(exp / "tune" / "curves.parquet")  # the search picture's data: every epoch of every trial
    ran = curves.groupby("trial_id")["epoch"].agg(["max", "count"])
    assert ran["max"].to_dict() == ran["count"].to_dict() == dict(zip(trials["trial_id"], trials["training_iteration"]))
    last = curves.sort_values("epoch").groupby("trial_id")["best_val_uar"].last()
    assert last.to_dict() == pytest.approx(dict(zip(trials["trial_id"], trials["best_val_uar"])))
    assert (exp / "tune" / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    complete = (~trials["stopped_early"]).sum()
    assert best["n_stopped_early"] == trials["stopped_early"].sum()
    if complete >= 2:
        assert set(best["importances"]) == {"lr", "batch_size", "dropout", "weight_decay"}, best
    else:
        assert best["importances"] is None and "too few" in best["importances_note"]

    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(tracking_uri=mlflow_db)
    found = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    (parent,) = [x for x in found if x.data.tags["sertune.role"] == "stage"]
    assert parent.info.run_name == "tune" and parent.info.status == "FINISHED"
    runs = {x.data.tags["sertune.trial_id"]: x for x in found if x.data.tags["sertune.role"] == "trial"}
    assert set(runs) == set(trials["trial_id"]), "not one MLflow run per trial"
    for _, row in trials.iterrows():
        x = runs[row["trial_id"]]
        assert x.info.run_name == f"trial {row['trial']}" and x.data.tags["stage"] == "tune"
        assert x.data.tags["mlflow.parentRunId"] == parent.info.run_id and x.info.status == "FINISHED"
        assert x.data.tags["sertune.outcome"] == ("pruned" if row["stopped_early"] else "complete")
        assert x.data.tags["n_att"] == "1" and x.data.params["batch_size"] == str(row["config/batch_size"])
        history = client.get_metric_history(x.info.run_id, "val_uar")
        assert [m.step for m in history] == list(range(1, row["training_iteration"] + 1))
        if not row["stopped_early"]:  # its last epoch is checkpointed (ASHA may stop one between checkpoints)
            assert [a.path for a in client.list_artifacts(x.info.run_id, "checkpoint")] == ["checkpoint/training.pt"]

    for event_file in glob.glob(str(exp / "tune" / "tune" / "*" / "events.out.tfevents.*")):
        assert scalar_tags(event_file) == {"train_loss", "val_uar", "best_val_uar", "epoch_time_s"}

    first = check_numbers(exp, r.output)  # one number per trial: console, study, tables, search.png
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 4,
            "--epochs", 4, "--grace-period", 1, "--reduction-factor", 2, "--max-concurrent", 2)
    assert r.exit_code == 0, r.output  # restores the finished experiment: nothing runs, every table rewritten
    trials = pd.read_parquet(exp / "tune" / "trials.parquet")
    assert dict(zip(trials["trial_id"], trials["trial"])) == first
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{exp}/tune/optuna.db")
    assert {t.user_attrs["ray_trial_id"]: t.number for t in study.trials} == first


def test_sweep_live_view(synth_store, tmp_path):
    r = run("sweep", "--store", synth_store, "--experiment-dir", tmp_path, "--no-tuned", "--n-att", "1,2",
            "--seeds", 1, "--epochs", 2)
    assert r.exit_code == 0, r.output
    lines = check_lines(r.output, SWEEP_LINES)
    assert sorted(re.search(r"N_att=\d", x).group() for x in lines if re.match(EVENT, x)) == ["N_att=1", "N_att=2"]
    found = [hparams(f) for f in glob.glob(str(tmp_path / "sweep" / "sweep-*" / "*" / "events.out.tfevents.*"))]
    assert sorted(v["n_att"] for v, _ in found) == [1, 2] and {v["seed"] for v, _ in found} == {0}, found
    assert all(m == {"train_loss", "val_uar", "best_val_uar", "epoch_time_s", "test_uar"} for _, m in found), found


def test_study_export_adds_each_trial_once_and_importances_use_full_budget_trials(tmp_path):
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from sertune.errors import ConfigError
    from sertune.trials.study import claim_study, export_study, importances

    dists = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "cycles": IntDistribution(1, 4)}
    study = optuna.create_study(direction="maximize")
    for i in range(6):
        pruned = i >= 4
        study.add_trial(create_trial(
            params={"lr": 10 ** (-4 + i / 3), "cycles": 1 + i % 4}, distributions=dists,
            value=None if pruned else 0.2 + 0.05 * i, state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            intermediate_values={1: 0.1}, user_attrs={"ray_trial_id": f"t{i}"}))
    url = f"sqlite:///{tmp_path}/optuna.db"
    claim_study(url, "s", "/runs/a/s")
    claim_study(url, "s", "/runs/a/s")  # the same experiment again: a resumed tune
    with pytest.raises(ConfigError, match="study 's' there belongs to the experiment /runs/a/s"):
        claim_study(url, "s", "/runs/b/s")
    export_study(study, url, "s")
    export_study(study, url, "s")  # after a restore the searcher holds the same trials again
    stored = optuna.load_study(study_name="s", storage=url)
    assert sorted(t.user_attrs["ray_trial_id"] for t in stored.trials) == [f"t{i}" for i in range(6)]
    assert [t.state for t in stored.trials].count(TrialState.PRUNED) == 2
    found, note = importances(url, "s")
    assert set(found) == {"lr", "cycles"} and sum(found.values()) == pytest.approx(1.0)
    assert note == "over 4 full-budget trials"


def _trial(tid: str, status: str, pair=(1, 0), epochs=4, uar=0.5):
    return SimpleNamespace(trial_id=tid, status=status, config={"pair": list(pair)}, error_file=None,
                           last_result={"training_iteration": epochs, "best_val_uar": uar})


def test_terminal_view_redraws_one_block(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    view = LiveView("sweep", 3, 4, tty=True, pairs=[(1, 0), (1, 1), (2, 0)])
    a, b = _trial("a", "RUNNING"), _trial("b", "PENDING", pair=(1, 1))
    view.setup()
    view.on_step_end(0, [a, b])  # draws the block: 2 lines
    a.status = "TERMINATED"
    view.on_trial_complete(1, [a, b], a)  # goes back 2 lines, prints the event, redraws
    text = out.getvalue()
    assert "\x1b[2F\x1b[J" in text, repr(text)
    final = text.rsplit("\x1b[J", 1)[1].splitlines()
    assert final[0].startswith("1/3 N_att=1 seed=0")
    assert final[1].startswith("sweep: 1/3 done, 0 running, 2 pending, 0 failed | ")
    assert final[2] == "  pairs done per N_att: 1: 1/2  2: 0/1\x1b[K"
    view.on_experiment_end([a, b])
    assert out.getvalue().endswith("\x1b[2F\x1b[J" + view.summary() + "\n")



def test_the_view_overrides_only_hooks_tune_calls():
    """A misspelt hook is silently never called (an `on_step` once left the block undrawn)."""
    from ray import tune

    hooks = [n for n in vars(LiveView) if n.startswith("on_") or n == "setup"]
    assert "on_step_end" in hooks and "on_experiment_end" in hooks
    assert all(callable(getattr(tune.Callback, n, None)) for n in hooks), hooks


def test_an_interrupted_run_is_not_summed_up_as_done():
    """On Ctrl-C Tune marks the trials it stops TERMINATED, like finished ones; the summary
    counts them apart (a resumed run's trials finished before are still done)."""
    view = LiveView("sweep", 4, 4, tty=False, pairs=[(1, 0), (1, 1), (2, 0), (2, 1)])
    old, a, b = _trial("old", "TERMINATED"), _trial("a", "RUNNING", pair=(1, 1)), _trial("b", "RUNNING", pair=(2, 0), epochs=2)
    view.setup()
    view.on_step_end(0, [old, a, b])  # the restored experiment: "old" finished in an earlier session
    a.status = "TERMINATED"
    view.on_trial_complete(1, [old, a, b], a)
    b.status = "TERMINATED"  # stopped by the interruption
    view.on_experiment_end([old, a, b])
    assert view.summary().startswith("sweep interrupted after ")
    assert view.summary().endswith(": 2/4 done, 0 running, 1 pending, 1 interrupted, 0 failed")


def test_a_log_line_says_how_long_is_left_at_this_sessions_pace(monkeypatch, capsys):
    """Not a terminal: each finished trial's line ends with the time left, from the trials this
    session finished (a restored run's earlier trials would make the pace look faster)."""
    now = [100.0]
    monkeypatch.setattr("sertune.trials.progress.time.monotonic", lambda: now[0])
    view = LiveView("sweep", 4, 4, tty=False, pairs=[(1, 0), (1, 1), (2, 0), (2, 1)])
    old, a, b = _trial("old", "TERMINATED"), _trial("a", "RUNNING", pair=(1, 1)), _trial("b", "RUNNING", pair=(2, 0))
    view.setup()
    view.on_step_end(0, [old, a, b])  # "old" finished in an earlier session
    now[0] += 600
    a.status = "TERMINATED"
    view.on_trial_complete(1, [old, a, b], a)  # 1 trial in 10 min here; 2 of 4 left
    now[0] += 300
    b.status = "TERMINATED"
    view.on_trial_complete(2, [old, a, b], b)  # 2 in 15 min; 1 left
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "[10:00] 2/4 N_att=1 seed=1 (about 20:00 left)"
    assert lines[2] == "[15:00] 3/4 N_att=2 seed=0 (about 7:30 left)"
    assert view.timing() == "15:00 elapsed, about 7:30 left"


def test_the_log_the_first_line_names_is_there_to_open(tmp_path, capsys):
    log = tmp_path / "exp" / "logs" / "sweep-1.log"
    view = LiveView("sweep", 3, 2, str(log), tty=False)
    view.setup()
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"sweep: 3 trials; Ray's output: {log}"
    assert log.read_text().endswith("sertune sweep: 3 trials start\n")
