"""A real S3 server on loopback for the tests: moto's server mode (as Ray's own storage tests use).

Everything stays on 127.0.0.1: the server binds it (moto's default is 0.0.0.0), and the AWS
SDK is told not to look for instance credentials (AWS_EC2_METADATA_DISABLED), which would
otherwise ask 169.254.169.254. Imported as `s3tools` (tests/ is on sys.path, like proctools).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

from proctools import free_port

KEY = SECRET = "testing"
REGION = "us-east-1"


def s3_env(endpoint: str) -> dict[str, str]:
    """The variables that point the AWS SDK (pyarrow's, boto3's) at ``endpoint``."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in a thread of this process; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def moto_process(**env: str) -> Iterator[str]:
    """moto's server in a process of its own, for settings it reads at import time
    (INITIAL_NO_AUTH_ACTION_COUNT: authentication enforced after that many requests)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)  # moto's own page: no auth count used
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.kill()
        proc.wait()


def client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                        region_name=REGION)


def make_bucket(endpoint: str, name: str) -> str:
    client(endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` (what is really in the bucket, not through sertune),
    less the empty "folder/" objects that pyarrow's create_dir makes."""
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]


def read(endpoint: str, bucket: str, key: str) -> bytes:
    return client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
