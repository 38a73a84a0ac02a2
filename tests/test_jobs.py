"""jobs/*.sh against a real two-node Ray cluster with token authentication.

The cluster lives on loopback only: a head on 127.0.0.2 and a worker on 127.0.0.3 with one
logical GPU (the cloud layout in miniature), started here with `ray start` under a private
temp dir and a private token file (RAY_AUTH_TOKEN_PATH; ~/.ray is not used). Every process it
started -- found by the sessions the two `ray start` calls open, plus their descendants -- is
killed at the end, pass or fail; `ray stop` is not used since it would stop every Ray on the
machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from proctools import (HEAD_IP, WORKER_IP, Procs, clean_env, free_port, gcs_nodes, node_ports, ray_start, sertune,
                       tail, wait_or_fail)

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
SCRIPTS = ["common.sh", "submit.sh", "wait.sh", "logs.sh", "stop.sh", "fetch_report.sh", "pipeline.sh"]


def jobs_env(**extra: str) -> dict[str, str]:
    """`clean_env` plus the interpreter jobs/common.sh runs Python with."""
    return clean_env(SERTUNE_PYTHON=sys.executable, **extra)


def run_script(name: str, *args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(JOBS / name), *args], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


# ------------------------------------------------------------------ without a cluster


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name):
    path = JOBS / name
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    if name != "common.sh":  # sourced, not run
        assert os.access(path, os.X_OK), f"{name} is not executable"


def test_submit_rejects_unknown_stage_and_missing_token(tmp_path):
    env = jobs_env(HOME=str(tmp_path))  # no ~/.ray/auth_token there
    r = run_script("submit.sh", "train", env=env)
    assert r.returncode == 2 and "unknown stage" in r.stderr
    r = run_script("submit.sh", "report", "--experiment-dir", "x", env=env)
    assert r.returncode == 2 and "no Ray auth token" in r.stderr
    r = run_script("submit.sh", "report", env={**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    assert r.returncode == 2 and "no Ray auth token" in r.stderr
    r = run_script("submit.sh", "report", env={**env, "RAY_ADDRESS": "10.0.0.1:6379"})
    assert r.returncode == 2 and "Jobs API" in r.stderr


def test_locations_come_from_the_cluster_config():
    def setting(env: dict, var: str, key: str) -> str:
        cmd = f'source jobs/common.sh && sertune_setting {var} {key}'
        return subprocess.run(["bash", "-c", cmd], env=env, cwd=ROOT, text=True, capture_output=True,
                              check=True).stdout

    env = jobs_env(SERTUNE_CLUSTER_CONFIG="cluster/config.yaml")
    assert setting(env, "SERTUNE_STORE", "store") == "s3://YOUR-BUCKET/sertune/features"
    assert setting({**env, "SERTUNE_STORE": "/mnt/x"}, "SERTUNE_STORE", "store") == "/mnt/x"
    env = jobs_env(SERTUNE_CLUSTER_CONFIG="cluster/local.yaml")
    assert setting(env, "SERTUNE_EXPERIMENT_DIR", "experiment_dir").startswith("/mnt/shared/")
    assert setting(jobs_env(), "SERTUNE_DATA", "data") == ""


def test_fetch_report_copies_a_visible_report(tmp_path):
    report = tmp_path / "exp" / "report"
    report.mkdir(parents=True)
    (report / "table.md").write_text("| LSTM-v-1 |\n")
    (report / "uar_vs_natt.png").write_bytes(b"png")
    r = run_script("fetch_report.sh", str(tmp_path / "exp"), str(tmp_path / "out"),
                   env=jobs_env(RAY_AUTH_TOKEN="unused"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "| LSTM-v-1 |\n"
    assert (tmp_path / "out" / "uar_vs_natt.png").read_bytes() == b"png"
    r = run_script("fetch_report.sh", str(tmp_path / "nowhere"), str(tmp_path / "out2"), env=jobs_env())
    assert r.returncode == 2 and "not visible here" in r.stderr


# ------------------------------------------------------------------ the two-node cluster


@dataclass
class Cluster:
    gcs_address: str
    jobs_url: str
    token: str
    token_path: Path
    procs: Procs
    corpus_proc: subprocess.Popen | None = None
    corpus_path: Path | None = None

    def corpus(self) -> Path:
        """The synthetic corpus, written while the cluster was starting."""
        log = self.corpus_path.parent / "corpus.log"
        assert wait_or_fail(self.corpus_proc, 180, log) == 0, tail(log)
        return self.corpus_path

    def client_env(self, **extra: str) -> dict[str, str]:
        """What a user's shell needs: the Jobs API address and the token file."""
        return jobs_env(RAY_ADDRESS=self.jobs_url, RAY_AUTH_TOKEN_PATH=str(self.token_path), **extra)

    def http(self, path: str, token: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.jobs_url + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def gcs_node_count(address: str, token: str | None) -> int:
    """Nodes the GCS lists, asked directly over gRPC with the token (if any) as Ray sends it."""
    return len(gcs_nodes(address, token, timeout=15))


@pytest.fixture(scope="module")
def cluster():
    procs = Procs()  # every process started here, and anything naming the temp dir, dies at the end
    temp = Path(procs.tempdir("srt-"))  # short: Ray's unix sockets live here
    token = secrets.token_hex(32)
    token_path = temp / "auth_token"
    token_path.write_text(token)
    token_path.chmod(0o600)
    # `sertune` on the nodes' PATH, running the checkout that each job ships as its working_dir
    # (the cluster YAMLs pip-install sertune instead).
    bin_dir = temp / "bin"
    bin_dir.mkdir()
    (bin_dir / "sertune").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sertune "$@"\n')
    (bin_dir / "sertune").chmod(0o755)
    node_env = clean_env([str(bin_dir)], RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path),
                         SERTUNE_PYTHON=sys.executable)
    gcs_port, dashboard_port = free_port(), free_port()
    c = Cluster(f"{HEAD_IP}:{gcs_port}", f"http://{HEAD_IP}:{dashboard_port}", token, token_path, procs)
    try:
        # Meanwhile, the smallest corpus a speaker-independent split accepts (3 actors per gender).
        c.corpus_path = temp / "data"
        c.corpus_proc = procs.popen(sertune("corpus", "--out", str(c.corpus_path), "--actors", "6"), clean_env(),
                                    temp / "corpus.log", cwd=ROOT)
        ray_start(procs, ["--head", f"--node-ip-address={HEAD_IP}", f"--port={gcs_port}",
                          f"--dashboard-host={HEAD_IP}", f"--dashboard-port={dashboard_port}",
                          f"--ray-client-server-port={free_port()}", "--num-cpus=2", "--num-gpus=0",
                          f"--temp-dir={temp / 'h'}", "--disable-usage-stats", *node_ports()], node_env, temp / "head.log")
        # Its own temp dir, as on a separate machine: nodes sharing one would share (and
        # garbage-collect) each other's runtime_resources, e.g. a job's working_dir.
        ray_start(procs, [f"--address={c.gcs_address}", f"--node-ip-address={WORKER_IP}", "--num-cpus=2",
                          "--num-gpus=1", f"--temp-dir={temp / 'w'}", "--disable-usage-stats", *node_ports()],
                  node_env, temp / "worker.log")
        deadline = time.monotonic() + 60
        while True:  # the Jobs API answers, and both nodes are alive
            try:
                status, body = c.http("/api/v0/nodes?detail=false&limit=10", token)
                nodes = json.loads(body)["data"]["result"]["result"] if status == 200 else []
            except (OSError, ValueError, KeyError):
                nodes = []
            up = {n.get("node_ip") for n in nodes if n.get("state") == "ALIVE"}
            if {HEAD_IP, WORKER_IP} <= up:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"cluster not up: alive nodes {up}")
            time.sleep(1)
        yield c
    finally:
        left = procs.close(grace=5.0)  # SIGTERM first: job drivers and raylets get to exit
        assert not left, f"processes survived SIGKILL: {sorted(left)}"


@pytest.mark.slow
def test_requests_without_the_token_are_refused(cluster):
    assert cluster.http("/api/jobs/")[0] == 401
    assert cluster.http("/api/jobs/", token="0" * 64)[0] == 403
    status, body = cluster.http("/api/jobs/", token=cluster.token)
    assert status == 200 and isinstance(json.loads(body), list)
    # The scripts: refused with a wrong token, accepted with the right one.
    r = run_script("logs.sh", "--list", env=cluster.client_env(RAY_AUTH_TOKEN="0" * 64))
    assert r.returncode != 0
    assert re.search(r"Authentication failed|403|invalid", r.stdout + r.stderr, re.I)
    r = run_script("logs.sh", "--list", env=cluster.client_env())
    assert r.returncode == 0, r.stderr
    # The GCS (gRPC, what drivers and nodes talk to) refuses calls without the token too.
    assert gcs_node_count(cluster.gcs_address, cluster.token) == 2
    for token in (None, "0" * 64):
        with pytest.raises(grpc.RpcError) as refused:
            gcs_node_count(cluster.gcs_address, token)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
    # The test token never reached the user's default token file.
    default = Path.home() / ".ray" / "auth_token"
    assert not default.exists() or default.read_text().strip() != cluster.token


@pytest.mark.slow
def test_pipeline_prepare_sweep_report_through_jobs(cluster, tmp_path):
    data = cluster.corpus()
    store, exp, fetched = (tmp_path / n for n in ("store", "exp", "fetched"))
    env = cluster.client_env(
        SERTUNE_WORKING_DIR=str(ROOT),
        SERTUNE_DATA=str(data), SERTUNE_STORE=str(store), SERTUNE_EXPERIMENT_DIR=str(exp),
        SERTUNE_STAGES="prepare sweep report",
        SERTUNE_SWEEP_ARGS="--no-tuned --n-att 1,2 --seeds 2 --epochs 2 --cpus-per-trial 1",
        SERTUNE_REPORT_DEST=str(fetched),
    )
    r = run_script("pipeline.sh", env=env, timeout=300)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-8000:]}"

    # The report was written to the shared experiment dir and fetched; its table is printed.
    for name in ("table.md", "uar_vs_natt.png"):
        assert (exp / "report" / name).is_file(), name
        assert (fetched / name).is_file(), name
    table = (fetched / "table.md").read_text()
    assert "LSTM-v-1" in table and "LSTM-v-2" in table
    assert "LSTM-v-1" in r.stdout

    # One Ray job per stage, each with the `sertune STAGE` entrypoint, all SUCCEEDED.
    status, body = cluster.http("/api/jobs/", token=cluster.token)
    assert status == 200
    jobs = {j["metadata"].get("sertune_stage"): j for j in json.loads(body) if j.get("metadata")}
    for stage in ("prepare", "sweep", "report"):
        assert jobs[stage]["status"] == "SUCCEEDED", jobs[stage]
        assert jobs[stage]["entrypoint"].startswith(f"sertune {stage} "), jobs[stage]["entrypoint"]

    # A failing stage makes submit.sh fail (and names the job's final status).
    r = run_script("submit.sh", "report", "--experiment-dir", str(tmp_path / "no-such-experiment"),
                   env=env, timeout=120)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "FAILED" in r.stderr

    # A job submitted without waiting, then stopped: wait.sh reports STOPPED and fails.
    r = run_script("submit.sh", "corpus", "--out", str(tmp_path / "big"), "--actors", "24",
                   env={**env, "SERTUNE_NO_WAIT": "1"}, timeout=60)
    assert r.returncode == 0, r.stderr[-4000:]
    job_id = r.stdout.strip()
    assert job_id.startswith("sertune-corpus-")
    assert run_script("stop.sh", job_id, env=env, timeout=60).returncode == 0
    r = run_script("wait.sh", job_id, env=env, timeout=60)
    assert r.returncode == 1 and f"job {job_id}: STOPPED" in r.stderr, r.stderr[-4000:]
