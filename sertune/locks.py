"""One writer at a time: a lock per store (`prepare`), per experiment (`sweep`) and per results
table (each append is a read-modify-write).

On a local disk (NFS included) the lock is ``fcntl.flock`` on ``LOCATION.lock``: the kernel drops
it when its holder dies, however it dies, so a lock is never stale (a file left by a killed
holder is simply locked by the next one). The file holds the holder's host and pid so that the
second writer's one line says who holds it. The holder removes it on release; whoever locked a
file that was removed meanwhile sees another inode at the path and tries again.

Object stores have no locks. There the rule is *one writer per store and per experiment*,
enforced by a lease object ``LOCATION.lock`` (holder, token, expiry) that its holder renews every
few seconds; a lease not renewed for ``LEASE_S`` has expired and may be taken over. Writing a
lease and reading it back is not atomic on every object store: two writers starting within the
same second may both win, so the rule, not the lease, is the guarantee.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid

from sertune import fsutil
from sertune.errors import SertuneError

LEASE_S = 60.0  # an object-store lease not renewed for this long is free
POLL_S = 0.05


def lock_path(location: str) -> str:
    return fsutil.with_suffix(fsutil.normalize(location), ".lock")


def holder_info() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def describe(info: dict | None) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} (since {info.get('since')})"


@contextlib.contextmanager
def hold(location: str, what: str, error: type[SertuneError], wait_s: float = 0.0):
    """Hold the lock of ``location`` for the block. Another holder: wait up to ``wait_s``
    seconds, then raise ``error`` with one line naming the lock, the holder and ``what``."""
    lock = lock_path(location)
    impl = _LeaseLock(lock) if fsutil.is_uri(lock) else _FileLock(lock)
    deadline = time.monotonic() + wait_s
    while not impl.acquire():
        if time.monotonic() >= deadline:
            raise error(f"{lock}: {what} is held by {describe(impl.holder())}; "
                        "wait for it to finish (one writer at a time)")
        time.sleep(POLL_S)
    try:
        yield
    finally:
        impl.release()


class _FileLock:
    def __init__(self, path: str):
        self.path, self.fd = path, None

    def acquire(self) -> bool:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed it between our open and our lock: try the new one
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder_info()).encode())
        self.fd = fd
        return True

    def holder(self) -> dict | None:
        try:
            with open(self.path) as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None  # being written right now

    def release(self) -> None:
        os.unlink(self.path)  # still locked here, so nobody holds this inode but us
        os.close(self.fd)  # closing drops the flock
        self.fd = None


class _LeaseLock:
    def __init__(self, uri: str):
        self.uri, self.token = uri, uuid.uuid4().hex
        self.stop = threading.Event()
        self.renewer: threading.Thread | None = None

    def holder(self) -> dict | None:
        if not fsutil.exists(self.uri):  # no lease; a storage failure raises its own one line
            return None
        try:
            return json.loads(fsutil.read_bytes(self.uri))
        except (OSError, ValueError):  # half-written or gone meanwhile: nobody holds it
            return None

    def _write(self) -> None:
        fsutil.write_bytes_atomic(self.uri, json.dumps(
            {**holder_info(), "token": self.token, "expires": time.time() + LEASE_S}).encode())

    def acquire(self) -> bool:
        held = self.holder()
        if held and held.get("token") != self.token and held.get("expires", 0) > time.time() and _alive(held):
            return False
        self._write()
        time.sleep(POLL_S)  # a rival who wrote at the same moment: the last write wins, the other backs off
        if (self.holder() or {}).get("token") != self.token:
            return False
        self.renewer = threading.Thread(target=self._renew, daemon=True)
        self.renewer.start()
        return True

    def _renew(self) -> None:
        while not self.stop.wait(LEASE_S / 4):
            with contextlib.suppress(OSError):
                self._write()

    def release(self) -> None:
        self.stop.set()
        if self.renewer:
            self.renewer.join()
        if (self.holder() or {}).get("token") == self.token:
            fs, path = fsutil.resolve(self.uri)
            with contextlib.suppress(OSError):
                fs.delete_file(path)


def _alive(held: dict) -> bool:
    """A lease's holder may still be writing: on this host, its process is alive (a SIGKILLed
    holder frees its lease at once); on another host, until the lease expires."""
    try:
        return pid_alive(str(held.get("host")), int(held.get("pid")))
    except (TypeError, ValueError):
        return True


def pid_alive(host: str, pid: int) -> bool:
    """Whether a process of this host still runs; another host's processes are assumed alive."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
