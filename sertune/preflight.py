"""Checks a command makes before it starts work: one line now, rather than a traceback after Ray
has started or training has finished, or a run that waits forever.

Light on purpose: Ray and torch are imported only by the checks that need them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from sertune.errors import ConfigError


def check_writable(location: str | os.PathLike | None, option: str) -> None:
    """A local output location must be a folder that exists or can be created, writable. URIs are
    left to their first write (an object store's permissions cannot be asked cheaply)."""
    if location is None or "://" in str(location):
        return
    path = Path(os.path.abspath(os.path.expanduser(location)))
    nearest = path
    while not nearest.exists():  # the folder, or the ancestor it would be created in
        nearest = nearest.parent
    if not nearest.is_dir():
        raise ConfigError(f"{option} {location}: {nearest} is a file, not a folder")
    try:  # os.access says yes to root and no to nothing mounted read-only: try a write instead
        fd, probe = tempfile.mkstemp(dir=nearest, prefix=".sertune-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{option} {location}: cannot write in {nearest} ({e.strerror})") from None


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def check_trial_resources(cpus_per_trial: float, gpus_per_trial: float, local: bool, warn=warn) -> None:
    """A trial asking for more than any node has waits forever. On sertune's own local Ray that
    is certain: refuse. On a cluster an autoscaler may add such a node: ``warn``. Ray must be
    connected."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most = {r: max((n.get(r, 0.0) for n in nodes), default=0.0) for r in ("CPU", "GPU")}
    asked = {"CPU": cpus_per_trial, "GPU": gpus_per_trial}
    short = [f"--{r.lower()}s-per-trial {asked[r]:g} but {'the local Ray' if local else 'no node'} has "
             f"{'only ' if local else 'more than '}{most[r]:g} {r}(s)" for r in asked if asked[r] > most[r]]
    if not short:
        return
    if local:
        raise ConfigError(f"{'; '.join(short)}: no trial could ever start; ask for less "
                          "(or give the local Ray more with --num-cpus/--num-gpus)")
    warn(f"{'; '.join(short)}: trials wait until the cluster has such a node (an autoscaler may add one)")


def check_device(device: str, gpus_per_trial: float, local: bool) -> None:
    """--device cuda in a trial needs a GPU share, and on the local Ray a GPU this machine has."""
    from sertune.training.loop import pick_device

    if local:
        pick_device(device)  # a one-line error for an unknown device or no CUDA
    if device.startswith("cuda") and gpus_per_trial <= 0:
        raise ConfigError(f"--device {device}: trials see no GPU with --gpus-per-trial 0; give them a share (e.g. 0.25)")
