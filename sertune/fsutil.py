"""Paths that may be local or any URI pyarrow understands (s3://, gs://, hdfs://, file://).

Every write goes through a temporary name and a move, so a reader never sees half a file.
On a local disk the move is an atomic rename; on object stores it is the closest they offer.
"""

from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in str(location)


def normalize(location: str | os.PathLike) -> str:
    """Local paths become absolute, URIs stay as they are."""
    location = str(location)
    return location if is_uri(location) else os.path.abspath(os.path.expanduser(location))


def resolve(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    location = normalize(location)
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def join(location: str, *parts: str) -> str:
    return "/".join([str(location).rstrip("/"), *parts])


def exists(location: str) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(location: str) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def read_bytes(location: str) -> bytes:
    fs, path = resolve(location)
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(location: str, data: bytes) -> None:
    fs, path = resolve(location)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    finally:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)


def delete_dir(location: str) -> None:
    fs, path = resolve(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)
