"""The feature store and the experiment directory on S3: a real S3 server (moto) on loopback.

One server and one pipeline per module: prepare -> tune (interrupted with Ctrl-C, then rerun)
-> sweep (SIGKILLed, then rerun with the endpoint given as URI query options instead of
AWS_ENDPOINT_URL) -> report, each stage the real CLI in a subprocess with its own local Ray,
run in an empty working directory that must stay empty. Storage failures (no such bucket,
access denied, endpoint unreachable) are one-line errors with exit 9.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner
from proctools import Procs, clean_env, free_port, synthetic_store, tail, wait_or_fail
from s3tools import keys, make_bucket, moto_process, moto_server, read, s3_env

from sertune import fsutil
from sertune.cli import cli

BUCKET = "sertune"
SPACE = "batch_size: 64\ncycles: 1\n"  # lr, dropout, weight_decay searched; fast batches


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server, its bucket, and this process pointed at it (for in-process commands)."""
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for k, v in s3_env(endpoint).items():
            mp.setenv(k, v)
        make_bucket(endpoint, BUCKET)
        host = endpoint.removeprefix("http://")
        yield SimpleNamespace(endpoint=endpoint, query=f"?endpoint_override={host}&scheme=http",
                              corpus=str(Path(synthetic_store(tmp_path_factory)).parent / "corpus"))


def _cli(*args, **env):
    """An in-process command; ``env`` values of None unset a variable."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.delenv(k, raising=False) if v is None else mp.setenv(k, v)
        return CliRunner().invoke(cli, list(map(str, args)))


def _one_line_error(r, code: int, *words: str) -> None:
    lines = r.output.strip().splitlines()
    assert r.exit_code == code, r.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    for w in words:
        assert w in lines[0], r.output


# ------------------------------------------------------------------ the pipeline on S3


def _wait_for_key(proc, log: Path, endpoint: str, prefix: str, part: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    def arrived(key: str) -> bool:  # the file itself: not a lease (.lock) nor a write's temp (.name.tmp-...)
        name = key.rsplit("/", 1)[-1]
        return name.startswith(part) and not name.endswith(".lock")

    while not any(arrived(k) for k in keys(endpoint, BUCKET, prefix)):
        assert proc.poll() is None, f"ended (rc {proc.returncode}) before {part} appeared in S3:\n{tail(log)}"
        assert time.monotonic() < deadline, f"no {part} under {prefix} in S3 after {timeout}s:\n{tail(log)}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pipeline(s3, tmp_path_factory):
    """Runs the stages; the tests below check what each left in the bucket."""
    procs = Procs()
    work = tmp_path_factory.mktemp("s3-pipeline")
    cwd = work / "cwd"
    cwd.mkdir()
    store, exp = f"s3://{BUCKET}/store", f"s3://{BUCKET}/exp"
    (work / "space.yaml").write_text(SPACE)
    env = clean_env(RAY_TMPDIR=procs.tempdir("s3"), **s3_env(s3.endpoint))
    cli_ = [sys.executable, "-m", "sertune"]
    tune = [*cli_, "tune", "--store", store, "--experiment-dir", exp, "--space", str(work / "space.yaml"),
            "--num-samples", "2", "--epochs", "4", "--grace-period", "4", "--num-cpus", "2"]
    sweep = ["sweep", "--n-att", "1,2", "--seeds", "1", "--epochs", "2", "--num-cpus", "1"]
    out = SimpleNamespace(store=store, exp=exp, work=work, cwd=cwd, rc={}, logs={})

    def run(name, cmd, env=env, until=None):
        out.logs[name] = log = work / f"{name}.log"
        proc = procs.popen(cmd, env, log, cwd=str(cwd))
        if until:
            _wait_for_key(proc, log, s3.endpoint, *until[:2])
            os.killpg(proc.pid, until[2])
        out.rc[name] = wait_or_fail(proc, 300, log)

    try:
        run("prepare", [*cli_, "prepare", "--data", s3.corpus, "--store", store, "--num-cpus", "2"])
        run("tune1", tune, until=("exp/tune/tune/", "experiment_state-", signal.SIGINT))  # Ctrl-C once it runs
        out.best_after_ctrl_c = keys(s3.endpoint, BUCKET, "exp/tune/best_config.json")
        run("tune2", tune)
        run("sweep1", [*cli_, *sweep, "--store", store, "--experiment-dir", exp],
            until=("exp/sweep/", "results.parquet", signal.SIGKILL))
        out.rows_after_kill = len(pd.read_parquet(io.BytesIO(read(s3.endpoint, BUCKET, "exp/sweep/results.parquet"))))
        no_endpoint = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}  # only the URIs say where
        run("sweep2", [*cli_, *sweep, "--store", store + s3.query, "--experiment-dir", exp + s3.query], env=no_endpoint)
        out.report = _cli("report", "--experiment-dir", exp + s3.query, AWS_ENDPOINT_URL=None)
        yield out
    finally:
        left = procs.close()
        assert not left, f"processes survived SIGKILL: {sorted(left)}"


def test_prepare_writes_the_store_to_s3(pipeline, s3):
    assert pipeline.rc["prepare"] == 0, tail(pipeline.logs["prepare"])
    names = keys(s3.endpoint, BUCKET, "store/")
    manifest = json.loads(read(s3.endpoint, BUCKET, "store/manifest.json"))
    assert sorted(n for n in names if n.endswith(".parquet")) == sorted(f"store/{s['file']}" for s in manifest["shards"])
    assert manifest["corpus"]["n_utterances"] == 360


def test_interrupted_tune_exits_7_then_rerun_writes_best_config(pipeline, s3):
    log1 = tail(pipeline.logs["tune1"], 20000)
    assert pipeline.rc["tune1"] == 7, log1
    assert "Error: tune stopped before the end" in log1 and "Traceback" not in log1.split("Error: tune stopped")[-1]
    assert pipeline.best_after_ctrl_c == [], "an interrupted tune published a best configuration"
    assert pipeline.rc["tune2"] == 0, tail(pipeline.logs["tune2"])
    best = json.loads(read(s3.endpoint, BUCKET, "exp/tune/best_config.json"))
    trials = pd.read_parquet(io.BytesIO(read(s3.endpoint, BUCKET, "exp/tune/trials.parquet")))
    assert best["n_trials"] == len(trials) == 2 and best["trial_id"] in set(trials["trial_id"])
    assert best["config"]["cycles"] == 1 and best["config"]["batch_size"] == 64
    # Continued, not started over: a fresh run would have added trials of its own.
    trial_dirs = {k.split("/")[3] for k in keys(s3.endpoint, BUCKET, "exp/tune/tune/") if k.count("/") > 3}
    assert len(trial_dirs) == 2, sorted(trial_dirs)


def test_killed_sweep_resumed_through_uri_query_options(pipeline, s3):
    assert pipeline.rc["sweep1"] == -signal.SIGKILL
    assert pipeline.rows_after_kill == 1
    assert pipeline.rc["sweep2"] == 0, tail(pipeline.logs["sweep2"])
    assert "(1 run now, 1 already there)" in tail(pipeline.logs["sweep2"])
    df = pd.read_parquet(io.BytesIO(read(s3.endpoint, BUCKET, "exp/sweep/results.parquet")))
    assert sorted(zip(df["n_att"], df["seed"])) == [(1, 0), (2, 0)]
    assert (df["epochs"] == 2).all() and df["uar"].between(0, 1).all()
    # The tuned configuration came from the bucket: the sweep ran at its learning rate.
    best = json.loads(read(s3.endpoint, BUCKET, "exp/tune/best_config.json"))
    assert {c["lr"] for c in df["config"]} == {best["config"]["lr"]}  # a struct column: dicts
    # Tune's checkpoints and state went to the bucket too; no "?endpoint_override" crept into a key.
    sweep_keys = keys(s3.endpoint, BUCKET, "exp/sweep/")
    assert any("/checkpoint_" in k for k in sweep_keys) and not any("?" in k or "&" in k for k in sweep_keys)


def test_report_on_s3_and_nothing_written_locally(pipeline, s3):
    r = pipeline.report
    assert r.exit_code == 0, r.output
    assert {k.rsplit("/", 1)[1] for k in keys(s3.endpoint, BUCKET, "exp/report/")} == {
        "table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png",
        "per_class.md", "per_class.tex", "per_class.csv", "confusion.png"}
    assert "LSTM-v-1" in read(s3.endpoint, BUCKET, "exp/report/table.md").decode()
    assert list(pipeline.cwd.iterdir()) == [], "a stage wrote into its working directory"


def test_train_out_s3_with_query_options(pipeline, s3, tmp_path, monkeypatch):
    """No stray local folder named `s3:`; weights and result in the bucket."""
    monkeypatch.chdir(tmp_path)
    r = _cli("train", "--store", pipeline.store + s3.query, "--out", f"s3://{BUCKET}/train{s3.query}",
             "--epochs", 1, "--batch-size", 64, "--cycles", 1, AWS_ENDPOINT_URL=None)
    assert r.exit_code == 0, r.output
    assert sorted(keys(s3.endpoint, BUCKET, "train/")) == ["train/model.pt", "train/predictions/n_att-1_seed-0.parquet", "train/result.json"]
    assert json.loads(read(s3.endpoint, BUCKET, "train/result.json"))["epochs"] == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ storage errors


def test_join_keeps_the_query_at_the_end():
    assert fsutil.join("s3://b/p?endpoint_override=h:1&scheme=http", "tune", "x.json") == \
        "s3://b/p/tune/x.json?endpoint_override=h:1&scheme=http"
    assert fsutil.join("s3://b/p/", "x") == "s3://b/p/x" and fsutil.join("/a/b", "c") == "/a/b/c"


@pytest.mark.parametrize("args", [
    ("prepare", "--data", "{corpus}", "--store", "s3://no-such-bucket/store"),
    ("train", "--store", "s3://sertune/store", "--out", "s3://no-such-bucket/train"),
    ("tune", "--store", "s3://sertune/store", "--experiment-dir", "s3://no-such-bucket/exp"),
    ("sweep", "--store", "s3://sertune/store", "--experiment-dir", "s3://no-such-bucket/exp", "--no-tuned"),
    ("report", "--experiment-dir", "s3://sertune/exp", "--out", "s3://no-such-bucket/report"),
], ids=lambda a: a[0])
def test_missing_bucket_is_one_line_exit_9(pipeline, s3, args):
    """Refused before any work: no Ray start, no training, nothing written."""
    before = keys(s3.endpoint, BUCKET)
    r = _cli(*(a.format(corpus=s3.corpus) for a in args))
    _one_line_error(r, 9, "s3://no-such-bucket/", "no such bucket 'no-such-bucket'")
    assert keys(s3.endpoint, BUCKET) == before


def test_unreachable_endpoint_is_one_line_exit_9(s3):
    dead = f"http://127.0.0.1:{free_port()}"
    r = _cli("report", "--experiment-dir", "s3://sertune/exp", AWS_ENDPOINT_URL=dead)
    _one_line_error(r, 9, "s3://sertune/exp/sweep/results.parquet", "cannot reach the storage endpoint", dead)


def test_access_denied_is_one_line_exit_9(s3, tmp_path):
    """moto enforces credentials after its first request (the bucket's creation); our key is
    not one of its IAM users, so every later request is denied."""
    with moto_process(INITIAL_NO_AUTH_ACTION_COUNT="1") as endpoint:
        make_bucket(endpoint, "locked")
        r = _cli("prepare", "--data", s3.corpus, "--store", "s3://locked/store", AWS_ENDPOINT_URL=endpoint)
        _one_line_error(r, 9, "s3://locked/store", "access denied")
        r = _cli("report", "--experiment-dir", "s3://locked/exp", AWS_ENDPOINT_URL=endpoint)
        _one_line_error(r, 9, "s3://locked/exp", "access denied")


def test_broken_build_on_s3_is_not_a_store(s3, tmp_path):
    """A build that aborts half-way (a truncated file) leaves shards but no manifest: no
    command takes it for a store, and the next build replaces it."""
    from sertune.config import FeatureConfig
    from sertune.errors import CorpusError, StoreError
    from sertune.store.build import build_store, plan_build, serial_runner
    from sertune.store.schema import read_manifest

    corpus = tmp_path / "corpus"
    for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04", "Actor_05", "Actor_06"):
        shutil.copytree(Path(s3.corpus) / actor, corpus / actor)
    bad = sorted((corpus / "Actor_01").iterdir())[0]  # the first shard: the build stops there
    bad.write_bytes(bad.read_bytes()[:30])
    store = f"s3://{BUCKET}/broken"
    with pytest.raises(CorpusError, match=bad.name):
        build_store(plan_build(str(corpus), store, FeatureConfig(), force=False), serial_runner)
    assert keys(s3.endpoint, BUCKET, "broken/shards/") and not keys(s3.endpoint, BUCKET, "broken/manifest.json")
    with pytest.raises(StoreError, match="no manifest.json"):
        read_manifest(store)
    r = _cli("train", "--store", store, "--out", str(tmp_path / "t"))
    _one_line_error(r, 4, store, "not a sertune feature store")


def test_jobs_pass_the_s3_endpoint_into_the_runtime_env():
    """What jobs/submit.sh gives `ray job submit`: the endpoint and region always, keys only
    when asked (a runtime environment is visible to every token holder)."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "jobs" / "runtime_env.py"
    base = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}

    def env_vars(**extra):
        out = subprocess.run([sys.executable, str(script)], env={**base, **extra}, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["env_vars"]

    assert env_vars() == {"PYTHONUNBUFFERED": "1", "AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert env_vars(SERTUNE_FORWARD_AWS_CREDENTIALS="1")["AWS_SECRET_ACCESS_KEY"] == "SK"
    assert env_vars(SERTUNE_RUNTIME_ENV_JSON='{"env_vars": {"AWS_ENDPOINT_URL": "http://other:9000"}}')[
        "AWS_ENDPOINT_URL"] == "http://other:9000"
