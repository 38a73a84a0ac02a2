"""Shared fixtures: one local Ray on loopback, the built-in corpus and its store, the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from proctools import synthetic_corpus, synthetic_store

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SERTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_16K = SHARED / "ravdess-speech-16k"
REAL_48K = SHARED / "ravdess-wav48-sample"


def _real(path: Path) -> Path:
    if path.is_dir():
        return path
    if os.environ.get("SERTUNE_REQUIRE_REAL_DATA") == "1":
        pytest.fail(f"{path} is missing but SERTUNE_REQUIRE_REAL_DATA=1 (CI must run the real-data tests)")
    pytest.skip(f"real RAVDESS not found at {path} (set SERTUNE_SHARED_DATA)")


@pytest.fixture(scope="session")
def real_16k() -> Path:
    return _real(REAL_16K)


@pytest.fixture(scope="session")
def real_48k() -> Path:
    return _real(REAL_48K)


@pytest.fixture(scope="session")
def ray_local():
    """One private Ray for the session, on a loopback IP, with a logical GPU for packing tests."""
    import ray

    from sertune import ray_runtime

    with ray_runtime.connect(num_cpus=2, num_gpus=1):
        yield ray
    assert not ray.is_initialized()


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """The built-in corpus, 6 actors. Read-only: a test that changes files copies them first."""
    return synthetic_corpus(tmp_path_factory)


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory) -> str:
    """The store of ``synth_corpus``, built without Ray (the Ray build has tests of its own in
    test_store.py). Tests that run trials ask for ``ray_local`` themselves."""
    return synthetic_store(tmp_path_factory)


@pytest.fixture
def procs():
    """Sessions and temp dirs of one test (tests/proctools.Procs), killed and removed at its end,
    pass or fail."""
    from proctools import Procs

    p = Procs()
    yield p
    left = p.close()
    assert not left, f"processes survived SIGKILL: {sorted(left)}"
