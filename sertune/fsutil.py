"""Paths that may be local or any URI pyarrow understands (s3://, gs://, hdfs://, file://).

A URI may carry file-system options as a query (``s3://b/p?endpoint_override=host:port&scheme=http``,
as pyarrow and Ray Tune accept them); path parts are joined before the query, never after it.

Every write goes through a temporary name and a move, so a reader never sees half a file.
On a local disk the move is an atomic rename; on object stores it is the closest they offer.

Every failure of the storage itself (no such bucket, access denied, endpoint unreachable)
becomes one ``StorageError`` line naming the location: see ``storage_errors``.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from sertune.errors import StorageError


BUCKET_SCHEMES = ("s3://", "gs://", "gcs://")  # object stores: the first path component is a bucket


def is_uri(location: str) -> bool:
    return "://" in str(location)


def normalize(location: str | os.PathLike) -> str:
    """Local paths become absolute, URIs stay as they are."""
    location = str(location)
    return location if is_uri(location) else os.path.abspath(os.path.expanduser(location))


def split_query(location: str) -> tuple[str, str]:
    """``("s3://b/p", "?endpoint_override=...")``; the query is "" when there is none."""
    location = str(location)
    if not is_uri(location) or "?" not in location:
        return location, ""
    base, query = location.split("?", 1)
    return base, "?" + query


def join(location: str, *parts: str) -> str:
    """Path parts appended to the path, the URI's query (if any) kept at the end."""
    base, query = split_query(location)
    return "/".join([base.rstrip("/"), *parts]) + query


def with_suffix(location: str, suffix: str) -> str:
    """``location`` + ``suffix`` on the path (``x.parquet`` -> ``x.parquet.lock``), the URI's query kept
    at the end."""
    base, query = split_query(location)
    return base.rstrip("/") + suffix + query


def resolve(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    location = normalize(location)
    if is_uri(location):
        with storage_errors(location):
            return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def reason(error: BaseException, location: str = "") -> str:
    """One line of why a storage operation failed, from pyarrow's (and the AWS SDK's) messages."""
    lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    line = next((line for line in lines if "AWS Error" in line), lines[-1])  # a Ray task's: a traceback, then this
    text = re.sub(r"\s*\(Request ID: [^)]*\)", "", " ".join(line.split()))
    m = re.search(r"AWS Error (?:\[code \d+\] )?([A-Z_]+) during \w+ operation: ?(.*)", text)
    if not m:
        return text[:300]
    kind, detail = m.groups()
    detail = "" if detail.strip() == "No response body." else detail.strip()  # HEAD requests carry none
    if kind == "NETWORK_CONNECTION":
        return f"cannot reach the storage endpoint {_endpoint(location)} ({detail.split(';')[0]})"
    return f"{kind.lower().replace('_', ' ')}: {detail}" if detail else kind.lower().replace("_", " ")


def _endpoint(location: str) -> str:
    """The endpoint a request went to: the URI's endpoint_override, else the SDK's variables."""
    m = re.search(r"[?&]endpoint_override=([^&]+)", location)
    if m:
        return m.group(1)
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "(the provider's default)"


def check_bucket(location: str) -> None:
    """An object store URI's bucket must exist: pyarrow reports a missing bucket as a missing
    file on read and fails only at the first write, after work was done."""
    if not str(location).startswith(BUCKET_SCHEMES):
        return
    fs, path = resolve(location)
    bucket = path.split("/", 1)[0]
    with storage_errors(location):
        if fs.get_file_info(bucket).type != pafs.FileType.Directory:
            raise StorageError(f"{location}: no such bucket {bucket!r}")


@contextlib.contextmanager
def storage_errors(location: str):
    """Turn a storage failure under this block into one ``StorageError`` line naming ``location``.

    Only URIs: a local path's errors (no such file, permissions) are left to the caller's own
    checks, which name the file already. pyarrow raises OSError for I/O and ArrowInvalid for a
    malformed URI or an unknown option in its query."""
    try:
        yield
    except (OSError, pa.ArrowInvalid) as e:
        if not is_uri(str(location)):
            raise
        raise StorageError(f"{location}: {reason(e, str(location))}") from None


def exists(location: str) -> bool:
    fs, path = resolve(location)
    with storage_errors(location):
        return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(location: str) -> bool:
    fs, path = resolve(location)
    with storage_errors(location):
        return fs.get_file_info(path).type == pafs.FileType.Directory


def read_bytes(location: str) -> bytes:
    fs, path = resolve(location)
    with storage_errors(location), fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(location: str, data: bytes) -> None:
    fs, path = resolve(location)
    parent = path.rsplit("/", 1)[0]
    tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex[:8]}"
    with storage_errors(location):
        fs.create_dir(parent, recursive=True)
        try:
            with fs.open_output_stream(tmp) as f:
                f.write(data)
            fs.move(tmp, path)
        finally:
            with contextlib.suppress(OSError):  # the storage may be what failed: the first error matters
                if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    fs.delete_file(tmp)


def delete_dir(location: str) -> None:
    fs, path = resolve(location)
    with storage_errors(location):
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
