"""`sertune prepare`: the corpus -> feature store, with extraction fanned out as Ray tasks."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ray
from tqdm import tqdm

from sertune import fsutil, locks, preflight, ray_runtime
from sertune.config import FeatureConfig
from sertune.errors import StoreError
from sertune.store.build import build_store, extract_shard, plan_build
from sertune.store.schema import SCHEMA_VERSION, read_manifest


def ray_task_runner():
    """Runs shard tasks as Ray tasks and yields results as they finish (any order)."""
    remote = ray.remote(num_cpus=1, max_retries=3)(extract_shard)

    def run(tasks):
        pending = [remote.remote(*task) for task in tasks]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        except KeyboardInterrupt:
            pending = []  # Ctrl-C: the tasks end with their owner, this driver; a cancel would only race that
            raise
        finally:
            for ref in pending:  # an abort (bad file) should not leave work writing into the staging store
                ray.cancel(ref)  # not force=True: killing workers mid-task trips Ray check failures, leaves agents running

    return run


def prepare(data: str, store: str, config: FeatureConfig, force: bool = False, skip_bad: bool = False,
            address: str | None = None, progress: bool = True, num_cpus: int | None = None,
            num_gpus: float | None = None, layout: str = "auto", labels: tuple[str, ...] | None = None,
            audio_root: str | None = None) -> tuple[dict | None, str]:
    """Build the store; returns (manifest or None if it was already up to date, message).
    One `prepare` per store at a time: a second one is refused (exit 4) naming the first."""
    preflight.check_writable(fsutil.normalize(store), "--store")  # before the lock, Ray and the first shard
    with locks.hold(store, "a `sertune prepare` of this store", StoreError):
        plan = plan_build(data, store, config, force, layout, labels, audio_root)
        if plan is None:
            return None, up_to_date(store)
        with ray_runtime.connect(address, num_cpus, num_gpus), progress_meter(len(plan.table), progress) as update:
            with fsutil.storage_errors(plan.store):  # the driver's writes and the tasks' (their errors come back here)
                manifest = build_store(plan, ray_task_runner(), skip_bad=skip_bad, progress=update)
    return manifest, summary(plan.store, manifest)


def up_to_date(store: str) -> str:
    version = read_manifest(store)["schema_version"]
    older = (f"; store format v{version}, read as it is (--force rewrites it as v{SCHEMA_VERSION}, same store hash)"
             if version < SCHEMA_VERSION else "")
    return f"{store}: up to date (same corpus and feature parameters){older}; --force rebuilds it"


@contextmanager
def progress_meter(total: int, show: bool, out=None) -> Iterator[Callable[[int], None]]:
    """``update(n)`` for n more utterances done: a bar on a terminal; elsewhere (a log, a job's
    output) a line at every tenth, since a bar's redraws would be hundreds of lines there."""
    out = out or sys.stderr
    if not show:
        yield lambda n=1: None
    elif out.isatty():
        with tqdm(total=total, unit="utt", desc="MFCC", dynamic_ncols=True, file=out) as bar:
            yield bar.update
    else:
        start, state = time.monotonic(), {"done": 0, "tenth": 0}

        def update(n: int = 1) -> None:
            state["done"] += n
            tenth = state["done"] * 10 // max(total, 1)
            if tenth > state["tenth"]:
                state["tenth"] = tenth
                print(f"MFCC: {state['done']}/{total} utterances ({tenth * 10} %, {time.monotonic() - start:.0f} s)",
                      file=out, flush=True)
        yield update


def summary(store: str, manifest: dict) -> str:
    """What `prepare` prints: counts, then one warning line per thing a researcher must know."""
    c = manifest["corpus"]
    msg = (f"{store}: {c['n_utterances']} utterances of {c['n_actors']} speakers in "
           f"{len(manifest['shards'])} shards, {c['name']}, {len(c['classes'])} classes "
           f"({', '.join(c['classes'])}) (store {manifest['store_hash']})")
    if c.get("folds"):
        msg += (f"\n{c['folds'].count(';') + 1} speaker folds from the manifest's fold column "
                f"(fold i validates on fold i + 1's speakers): train on them with --actor-folds {store}")
    if manifest["skipped"]:
        msg += f"; skipped {len(manifest['skipped'])} bad file(s), listed in manifest.json"
    for group in c["duplicates"]:
        msg += f"\nWarning: byte-identical audio under {len(group)} names: {', '.join(group)} (kept together by --split random)"
    for w in c["warnings"]:
        msg += f"\nWarning: {w['path']}: {w['warning']}"
    return msg
