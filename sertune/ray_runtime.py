"""Connecting to Ray: an existing cluster when given an address, else a private local one.

The local default listens on loopback only, with token authentication, and no metrics
endpoints. How Ray 2.60 chooses where to listen: its gRPC servers (GCS, raylet, workers) bind
loopback only when the node address is exactly 127.0.0.1, localhost or ::1, and any other
address (127.0.0.2 included) makes them listen on every interface; ray.init swaps 127.0.0.1 for
the machine's address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0. The metrics exporters (one per
node, plus the autoscaler's and the dashboard's) listen on 0.0.0.0 unless turned off.
Children (GCS, raylet, workers) read these settings from the environment, so they are set in
this process's environment before Ray starts and restored when it stops.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets

# SERTUNE_LOCAL_IP moves the private Ray to another address; only 127.0.0.1, localhost and ::1
# keep every listener on loopback (see above).
LOCAL_IP = os.environ.get("SERTUNE_LOCAL_IP", "127.0.0.1")
LOOPBACK_ONLY = ("127.0.0.1", "localhost", "::1")
QUIET_LOGGERS = ("ray", "mlflow", "alembic", "optuna", "py.warnings")


@functools.lru_cache(maxsize=1)
def _token() -> str:
    # One per process: Ray's driver reads the token once, so a second local Ray must reuse it.
    return secrets.token_hex(32)


def local_env() -> dict[str, str]:
    """The environment of a loopback-only local Ray. What the user set wins."""
    wanted = {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # else ray.init replaces 127.0.0.1 with the machine's address
        "AUTOSCALER_METRIC_PORT": "0",  # 0: no autoscaler metrics endpoint
        "DASHBOARD_METRIC_PORT": "0",
        # Token auth even on loopback (another local user could connect), with a token per
        # process, so that Ray has no reason to warn about it.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": _token(),
    }
    return {k: os.environ.get(k, v) for k, v in wanted.items()}


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None,
            quiet: bool = True):
    """Yield with Ray initialised; shut it down afterwards only if this call started it.
    ``quiet``: workers' output stays in Ray's session logs instead of this terminal."""
    import ray  # here, not at the top: `sertune --help` and Ray-less commands never pay for it

    if ray.is_initialized():
        yield
        return
    address = resolve_address(address)
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=not quiet)
        try:
            yield
        finally:
            ray.shutdown()
        return
    warn_if_exposed(LOCAL_IP)
    with _environ(local_env()):
        from ray._private import ray_constants

        _reload_auth()  # the driver read RAY_AUTH_* when ray was imported

        cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "1"  # read at import
        ray.init(
            _node_ip_address=LOCAL_IP,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=not quiet,
            _system_config={"enable_metrics_collection": False},  # no per-node metrics endpoint
        )
        try:
            yield
        finally:
            ray.shutdown()
            ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
    _reload_auth()


def warn_if_exposed(ip: str) -> None:
    """One line on stderr when the private Ray will not be loopback-only (the module's docstring
    says why any other address, 127.0.0.2 included, listens on every interface)."""
    if ip not in LOOPBACK_ONLY:
        import sys

        print(f"Warning: SERTUNE_LOCAL_IP={ip}: the local Ray's servers listen on every interface of this machine, "
              f"not only on loopback (only {', '.join(LOOPBACK_ONLY)} keep them there); token auth still applies",
              file=sys.stderr, flush=True)


def _reload_auth() -> None:
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # before the cache, as Ray's own tests do
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def logs_to(path: str | None):
    """Send the log records and warnings of Ray, MLflow and Optuna to the file ``path`` while
    inside; ``None`` leaves them where they are (the terminal)."""
    if path is None:
        yield
        return
    import ray  # noqa: F401  -- importing ray installs its own handler, which is replaced here

    # No file (nor folder) until something is logged: a command refused before it runs leaves none.
    # Once trials start the live view writes a first line, so the file it names is there.
    handler = _LazyFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in QUIET_LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.handlers[:], log.propagate))
        log.handlers[:] = [handler]
        log.propagate = False
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for log, handlers, propagate in saved:
            log.handlers[:] = handlers
            log.propagate = propagate
        handler.close()


class _LazyFileHandler(logging.FileHandler):
    def _open(self):
        os.makedirs(os.path.dirname(self.baseFilename), exist_ok=True)
        return super()._open()


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))
