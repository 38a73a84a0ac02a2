"""Issue 13's data-safety points: nothing lost, one writer at a time, garbage refused by name.

Stores here are built without Ray (``serial_runner``) from one or two actors of the built-in
corpus: seconds each. Locks are tested against real second processes.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from sertune import locks
from sertune.audio.corpus import scan
from sertune.cli import cli
from sertune.config import FeatureConfig, TrainConfig
from sertune.errors import CorpusError, ResultsError, StoreError, TrialError
from sertune.experiment import SweepSettings
from sertune.store.build import build_store, duplicate_groups, plan_build, serial_runner
from sertune.store.load import load_store
from sertune.training.batching import Sequences, normalize
from sertune.training.splits import random_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from sertune.audio.synthetic import write_corpus

    out = tmp_path_factory.mktemp("corpus13")
    write_corpus(out, actors=2, seed=0)  # the tests use actors 1 and 2 only
    return out


def one_actor(corpus, dst, actor=1):
    shutil.copytree(corpus / f"Actor_{actor:02d}", dst / f"Actor_{actor:02d}")
    return dst


def build(data, store, force=False):
    plan = plan_build(str(data), str(store), FeatureConfig(), force)
    return None if plan is None else build_store(plan, serial_runner)


def python(code: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hold_lock(location):
    """A second real process holding ``location``'s lock until killed; returns once it holds it."""
    p = python("""
        import sys, time
        from sertune import locks
        from sertune.errors import SertuneError
        with locks.hold(sys.argv[1], "test", SertuneError):
            print("held", flush=True)
            time.sleep(600)
    """, location)
    assert p.stdout.readline().strip() == "held"
    return p


# 1 -----------------------------------------------------------------------------------------
def test_force_never_replaces_a_folder_that_is_not_a_sertune_store(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    w = tmp_path / "w"
    (w / "src").mkdir(parents=True)
    (w / "manifest.json").write_text('{"name": "app"}')
    (w / "src" / "app.js").write_text("code")
    for force in (False, True):
        with pytest.raises(StoreError) as e:
            plan_build(str(data), str(w), FeatureConfig(), force)
        assert "not a sertune feature store" in e.value.message and "--force" not in e.value.message
    assert (w / "src" / "app.js").read_text() == "code"


# 2 -----------------------------------------------------------------------------------------
def test_two_processes_appending_keep_every_row(tmp_path):
    table = tmp_path / "results.parquet"
    code = """
        import sys
        from sertune import results
        row = {c: 0.5 for c in results.RESULT_COLUMNS}
        row.update(confusion="[]", fold_uar="[]", config="{}", protocol="{}", store_hash="h", features="{}", code_version="v", node="n",
                   corpus="ravdess", classes="[]", recall="[]",
                   finished_at="2026-01-01T00:00:00+00:00", best_epoch=1, epochs=1)
        for seed in range(40):
            results.append_rows(sys.argv[1], [{**row, "n_att": int(sys.argv[2]), "seed": seed}])
    """
    procs = [python(code, table, n_att) for n_att in (1, 2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    from sertune.results import read_results

    df = read_results(str(table))
    assert len(df) == 80 and set(df.n_att) == {1, 2}
    assert not (tmp_path / "results.parquet.lock").exists()


def test_second_prepare_of_a_store_is_refused_naming_the_first(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    store = tmp_path / "store"
    holder = hold_lock(store)
    try:
        r = CliRunner().invoke(cli, ["prepare", "--data", str(data), "--store", str(store)])
        assert r.exit_code == 4, r.output
        line = r.output.strip().splitlines()[-1]
        assert line.startswith("Error: ") and f"pid {holder.pid}" in line and "store.lock" in line
        assert not store.exists()
    finally:
        holder.kill()
        holder.wait()
    # a holder killed with SIGKILL leaves its file, never a stale lock
    assert (tmp_path / "store.lock").exists()
    with locks.hold(str(store), "test", StoreError):
        pass


def test_second_sweep_of_an_experiment_is_refused(tmp_path):
    from sertune.trials.sweep import run_sweep

    location = str(tmp_path / "exp" / "sweep" / "results.parquet")
    holder = hold_lock(location + ".sweep")
    try:
        with pytest.raises(TrialError, match=f"pid {holder.pid}"):
            run_sweep(str(tmp_path / "no-store"), str(tmp_path / "exp"), TrainConfig(), SweepSettings())
    finally:
        holder.kill()
        holder.wait()



def test_second_tune_of_an_experiment_is_refused(tmp_path):
    from sertune.experiment import TuneSettings
    from sertune.trials.tune import run_tune

    holder = hold_lock(str(tmp_path / "exp" / "tune" / "tune"))
    try:
        with pytest.raises(TrialError, match=f"tune.lock: a tune run of this experiment is held by pid {holder.pid}"):
            run_tune(str(tmp_path / "no-store"), str(tmp_path / "exp"), TrainConfig(), {}, TuneSettings())
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "exp" / "tune" / "tune").exists()  # refused before Tune made anything

def test_waiting_appender_gives_up_with_one_line(tmp_path, monkeypatch):
    from sertune import results

    table = str(tmp_path / "r.parquet")
    holder = hold_lock(table)
    monkeypatch.setattr(results, "APPEND_WAIT_S", 0.2)
    try:
        with pytest.raises(ResultsError, match="held by pid"):
            results.append_rows(table, [])
    finally:
        holder.kill()
        holder.wait()


def test_object_store_lease_refuses_a_second_writer(tmp_path):
    uri = f"file://{tmp_path}/exp/results.parquet"
    with locks.hold(uri, "test", TrialError):
        lease = json.loads((tmp_path / "exp" / "results.parquet.lock").read_text())
        assert lease["pid"] == os.getpid() and lease["expires"] > time.time()
        with pytest.raises(TrialError, match="held by"):
            with locks.hold(uri, "test", TrialError):
                pass
    assert not (tmp_path / "exp" / "results.parquet.lock").exists()


# 4 -----------------------------------------------------------------------------------------
def test_stale_staging_folders_of_dead_builds_are_removed(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    store = tmp_path / "store"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, pid, host in [("dead", dead.pid, socket.gethostname()), ("live", os.getpid(), socket.gethostname()),
                            ("elsewhere", dead.pid, "another-host")]:
        staging = tmp_path / f"store.partial-{name}"
        (staging / "shards").mkdir(parents=True)
        (staging / ".sertune-store").write_text(json.dumps({"pid": pid, "host": host}))
    (tmp_path / "store.partial-foreign").mkdir()  # no marker of ours: never touched
    build(data, store)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("store."))
    assert left == ["store.partial-elsewhere", "store.partial-foreign", "store.partial-live"]


# 7 (store half) ------------------------------------------------------------------------------
def test_damaged_shard_is_refused_by_name_on_load(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    store = tmp_path / "store"
    build(data, store)
    assert len(load_store(str(store))) == 60
    shard = store / "shards" / "actor_01.parquet"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = np.full(16, np.nan, np.float32).tobytes()  # NaNs among the MFCC
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="actor_01.parquet: checksum mismatch") as e:
        load_store(str(store))
    assert e.value.exit_code == 4


# 8 -----------------------------------------------------------------------------------------
def test_truncated_wav_is_refused_naming_the_file(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    bad = data / "Actor_01" / "03-01-05-02-01-01-01.wav"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])  # the header still promises the whole clip
    assert sf.info(str(bad)).frames > 0  # libsndfile alone would read it as a shorter clip
    with pytest.raises(CorpusError, match="truncated") as e:
        build(data, tmp_path / "store")
    assert str(bad) in e.value.message and e.value.exit_code == 3
    assert not (tmp_path / "store").exists()


# 10 ----------------------------------------------------------------------------------------
def test_audio_edited_in_place_at_the_same_size_is_a_different_corpus(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    store = tmp_path / "store"
    build(data, store)
    assert build(data, store) is None  # up to date
    f = data / "Actor_01" / "03-01-04-01-02-01-01.wav"
    y, sr = sf.read(f, dtype="int16")
    sf.write(f, -y, sr, subtype="PCM_16")  # same size, other audio
    with pytest.raises(StoreError, match="another corpus"):
        build(data, store)


# 11 ----------------------------------------------------------------------------------------
def test_actor_folders_that_are_symbolic_links_are_followed(corpus, tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink(corpus / "Actor_02", tmp_path / "data" / "Actor_02")
    one_actor(corpus, tmp_path / "data", actor=1)
    table = scan(tmp_path / "data")
    assert sorted(table.actor.unique()) == [1, 2] and len(table) == 120
    assert all(p.startswith(str(tmp_path / "data")) for p in table.path)


# 15 ----------------------------------------------------------------------------------------
def test_duplicates_silence_and_cancelling_stereo_are_recorded_and_warned(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    a = data / "Actor_01"
    shutil.copyfile(a / "03-01-03-01-02-01-01.wav", a / "03-01-03-01-02-02-01.wav")
    y, sr = sf.read(a / "03-01-05-01-01-01-01.wav")
    sf.write(a / "03-01-05-01-01-01-01.wav", np.zeros_like(y), sr, subtype="PCM_16")
    y, sr = sf.read(a / "03-01-06-01-01-01-01.wav")
    sf.write(a / "03-01-06-01-01-01-01.wav", np.stack([y, -y], axis=1), sr, subtype="PCM_16")
    plan = plan_build(str(data), str(tmp_path / "store"), FeatureConfig(), False)
    from sertune.store.prepare import summary

    manifest = build_store(plan, serial_runner)
    c = manifest["corpus"]
    assert c["duplicates"] == [["03-01-03-01-02-01-01", "03-01-03-01-02-02-01"]]
    warned = {w["utt_id"]: w["warning"] for w in c["warnings"]}
    assert set(warned) == {"03-01-05-01-01-01-01", "03-01-06-01-01-01-01"}
    assert "silence" in warned["03-01-05-01-01-01-01"] and "cancel" in warned["03-01-06-01-01-01-01"]
    assert summary(str(tmp_path / "store"), manifest).count("\nWarning: ") == 3
    meta = load_store(str(tmp_path / "store")).meta
    assert meta.dup_group.nunique() == 59


@pytest.mark.realdata
def test_real_ravdess_duplicate_pair_is_found(real_16k, tmp_path):
    plan = plan_build(str(real_16k), str(tmp_path / "s"), FeatureConfig(), False)
    assert duplicate_groups(plan.table) == [["03-01-03-01-02-01-07", "03-01-03-01-02-02-07"]]


def test_random_split_keeps_duplicates_on_one_side():
    n = 400
    meta = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "label": np.arange(n) % 8})
    meta["dup_group"] = [f"u{i - 8}" if i % 16 >= 8 else f"u{i}" for i in range(n)]  # pairs, same label
    for seed in range(5):
        split = random_split(meta, seed)
        side = pd.Series("", index=meta.index)
        for name in ("train", "val", "test"):
            side[getattr(split, name)] = name
        assert (side.groupby(meta.dup_group).nunique() == 1).all()
        assert len(split.train) + len(split.val) + len(split.test) == n
    plain = random_split(meta.drop(columns="dup_group"), 0)
    assert (side.groupby(meta.dup_group).nunique() == 1).all() and len(plain.test) == 8 * round(50 * 0.15)


# 16 ----------------------------------------------------------------------------------------
def test_one_long_file_does_not_multiply_memory(corpus, tmp_path):
    data = one_actor(corpus, tmp_path / "data")
    long = data / "Actor_01" / "03-01-02-01-01-01-01.wav"
    y, sr = sf.read(long)
    sf.write(long, np.tile(y, int(np.ceil(60 * sr / len(y))))[: 60 * sr], sr, subtype="PCM_16")  # 60 s
    build(data, tmp_path / "store")
    fs = load_store(str(tmp_path / "store"))
    total, longest = int(fs.lengths.sum()), int(fs.lengths.max())
    assert longest >= 5990 and longest * len(fs) > 10 * total  # padding would be 10x the data
    assert fs.frames.shape == (total, 34)
    x = normalize(fs, torch.arange(len(fs)), "global")
    assert isinstance(x, Sequences) and x.frames.numel() == total * 34
    short = torch.argsort(fs.lengths)[:8]
    assert x.batch(short).shape == (8, int(fs.lengths[short].max()), 34)
    assert torch.equal(x.batch(short), x.padded()[short, : int(fs.lengths[short].max())])
