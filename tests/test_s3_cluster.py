"""A two-node Ray cluster on loopback whose store and experiment directory are on S3 (moto).

The head (127.0.0.2) and the worker (127.0.0.3) are started with `ray start`, each with its own
working directory, temp directory and Ray temp dir; the store exists only in the bucket. Once a
sweep trial on the worker has a checkpoint in S3, the worker's raylet is SIGKILLed and the
worker's directories are deleted: the trial can then only resume from its checkpoint in S3,
on the head, reading the store from S3.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
from proctools import (HEAD_IP, WORKER_IP, clean_env, cmdline, free_port, gcs_nodes, node_ports, session_pids,
                       ray_start, synthetic_store, tail, wait_or_fail)
from s3tools import keys, make_bucket, moto_server, read, s3_env

BUCKET = "cluster"


def _alive_nodes(gcs: str) -> set[str]:
    from ray.core.generated import gcs_pb2

    return {n.node_manager_address for n in gcs_nodes(gcs) if n.state == gcs_pb2.GcsNodeInfo.ALIVE}


def _progress(endpoint: str) -> dict[str, dict]:
    """trial dir -> {"pair", "lines": [(node_ip, epoch, checkpoint_dir_name)]} from the trials'
    result.json in the bucket (what Tune persisted, not any node's local copy)."""
    out = {}
    for key in keys(endpoint, BUCKET, "exp/sweep/"):
        if not key.endswith("/result.json"):
            continue
        lines, pair = [], None
        for line in read(endpoint, BUCKET, key).decode().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "epoch" in r:
                lines.append((r.get("node_ip"), r["epoch"], r.get("checkpoint_dir_name")))
            pair = pair or tuple(r.get("config", {}).get("pair", ()))
        out[key.rsplit("/", 1)[0]] = {"pair": pair, "lines": lines}
    return out


@pytest.mark.slow
def test_worker_dies_mid_trial_with_store_and_experiment_on_s3(tmp_path, tmp_path_factory, procs):
    local_store = synthetic_store(tmp_path_factory)
    with moto_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        store, exp = f"s3://{BUCKET}/store", f"s3://{BUCKET}/exp"
        s3fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing", secret_key="testing", region="us-east-1")
        pafs.copy_files(local_store, f"{BUCKET}/store", destination_filesystem=s3fs)  # a store in the bucket only

        dirs = {name: tmp_path / name for name in ("head", "worker", "driver")}
        for d in dirs.values():
            (d / "tmp").mkdir(parents=True)
        temp = procs.tempdir("r3")  # Ray's temp dirs: short (unix sockets), one per node

        def env(node: str) -> dict:
            return clean_env(RAY_AUTH_MODE="disabled", TMPDIR=str(dirs[node] / "tmp"), HOME=str(dirs[node]),
                             **s3_env(endpoint))

        gcs = f"{HEAD_IP}:{free_port()}"
        ray_start(procs, [*node_ports(), "--disable-usage-stats", "--head", f"--node-ip-address={HEAD_IP}", f"--port={gcs.rsplit(':', 1)[1]}",
                              "--include-dashboard=false", f"--dashboard-port={free_port()}",
                              f"--ray-client-server-port={free_port()}", "--num-cpus=1", "--num-gpus=0",
                              f"--temp-dir={temp}/head"], env("head"), tmp_path / "head.log", cwd=dirs["head"])
        worker_session = ray_start(procs, [*node_ports(), "--disable-usage-stats", f"--address={gcs}", f"--node-ip-address={WORKER_IP}", "--num-cpus=1",
                                               "--num-gpus=0", f"--temp-dir={temp}/worker"],
                                    env("worker"), tmp_path / "worker.log", cwd=dirs["worker"])
        deadline = time.monotonic() + 60
        while (alive := _alive_nodes(gcs)) != {HEAD_IP, WORKER_IP}:
            assert time.monotonic() < deadline, f"cluster not up: alive nodes {alive}"
            time.sleep(0.5)
        raylets = [p for p in session_pids({worker_session}) if "/raylet/raylet" in cmdline(p).split(" ")[0]]
        assert len(raylets) == 1, f"worker raylet not found: {raylets}"

        epochs, log = 100, tmp_path / "sweep.log"  # checkpoints every 5 epochs; mid-trial at the kill even when idle
        driver = procs.popen([sys.executable, "-m", "sertune", "sweep", "--store", store, "--experiment-dir", exp,
                                 "--no-tuned", "--n-att", "1,2", "--seeds", "1", "--epochs", str(epochs),
                                 "--batch-size", "64", "--max-failures", "3",
                                 "--address", gcs], env("driver"), log, cwd=str(dirs["driver"]))
        deadline, victim = time.monotonic() + 240, None
        while victim is None:
            for trial, p in _progress(endpoint).items():
                mine = [e for ip, e, _ in p["lines"] if ip == WORKER_IP]
                if mine and 6 <= max(mine) <= epochs - 10:  # past its epoch-5 checkpoint, far from the end
                    victim = trial
            assert driver.poll() is None, f"sweep ended (rc {driver.returncode}) before the kill:\n{tail(log)}"
            assert time.monotonic() < deadline, f"no trial progressed on the worker in 240s:\n{tail(log)}"
            time.sleep(0.5)
        os.kill(raylets[0], signal.SIGKILL)
        # Nothing the worker had locally survives it: not its temp files, not Ray's trial staging.
        shutil.rmtree(f"{temp}/worker", ignore_errors=True)
        shutil.rmtree(dirs["worker"], ignore_errors=True)

        assert wait_or_fail(driver, 300, log) == 0, tail(log)
        df = pd.read_parquet(io.BytesIO(read(endpoint, BUCKET, "exp/sweep/results.parquet")))
        progress = _progress(endpoint)

    assert sorted(zip(df["n_att"], df["seed"])) == [(1, 0), (2, 0)], "every pair once"
    assert (df["epochs"] == epochs).all()
    rows = {(int(r["n_att"]), int(r["seed"])): r for r in df.to_dict("records")}
    lines = progress[victim]["lines"]
    pair = progress[victim]["pair"]
    assert rows[pair]["node"].endswith("/" + HEAD_IP), f"{pair} was not retried on the head: {rows[pair]['node']}"
    on_worker = [e for ip, e, _ in lines if ip == WORKER_IP]
    on_head = [e for ip, e, _ in lines if ip == HEAD_IP]
    # Resumed from a checkpoint in S3 (epoch 5, 10, ...; the worker's copy was deleted), not from epoch 1,
    # and not from one older than the last the driver recorded. No upper bound from here: the progress
    # lines are the driver's record and lose the worker's last reports before the kill while their
    # checkpoints are already in S3 (seen: lines to 37, retry from 41).
    reached = max(on_worker)
    assert on_head and 5 < on_head[0] < epochs and (on_head[0] - 1) % 5 == 0, f"retry started at {on_head[:1]}"
    assert on_head[0] - 1 > reached - 5, f"retry started at {on_head[0]}, an older checkpoint than epoch {reached}'s"
    assert on_head[-1] == epochs
    # Ray's own account of the restore: the checkpoint came from the S3 file system, on the head.
    # Ray's own output goes to the log file the live view names in its first line, not to the terminal.
    text = tail(log, 10**7)
    ray_log = re.search(r"Ray's output: (\S+)", text)
    if ray_log and Path(ray_log.group(1)).exists():
        text += Path(ray_log.group(1)).read_text(errors="replace")
    for worker_out in Path(temp, "head").glob("session_*/logs/worker-*"):  # trial output stays in Ray's logs
        text += worker_out.read_text(errors="replace")
    restored = re.findall(r"Restored on ([\d.]+) from checkpoint: Checkpoint\(filesystem=(\w+), path=(\S+)\)", text)
    assert restored and all(ip == HEAD_IP and fs == "s3" and path.startswith(f"{BUCKET}/exp/") for ip, fs, path in restored), restored
    # The other trial ran on the head from the start; both read their store from S3 only.
    other = next(p for t, p in progress.items() if t != victim)
    assert {ip for ip, _, _ in other["lines"]} == {HEAD_IP}
    assert not any(Path(d).exists() for d in (f"{temp}/worker", dirs["worker"]))
    driver_files = [p for p in dirs["driver"].rglob("*") if p.is_file() and "tmp" not in p.relative_to(dirs["driver"]).parts]
    assert driver_files == [], f"the driver wrote into its working directory: {driver_files}"
