"""Connecting to Ray: an existing cluster when given an address, else a private local one.

The local default binds to a loopback address: a laptop run has no business listening on the
network. Ray rewrites 127.0.0.1 to the machine's interface, so another loopback IP is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

LOCAL_IP = os.environ.get("SERTUNE_LOCAL_IP", "127.0.0.2" if sys.platform.startswith("linux") else "127.0.0.1")


def resolve_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None):
    """Yield with Ray initialised; shut it down afterwards only if this call started it."""
    import ray  # here, not at the top: `sertune --help` and Ray-less commands never pay for it

    if ray.is_initialized():
        yield
        return
    address = resolve_address(address)
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    else:
        ray.init(
            _node_ip_address=LOCAL_IP,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    try:
        yield
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))
