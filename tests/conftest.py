"""Shared fixtures: the dataset, a private Redis server and real `celery worker` processes.

Fashion-MNIST comes from $FASHION_MNIST_ROOT (the Makefile sets it) or data/; the tests
never download it. The service fixtures come from devtools.local.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from worker.settings import REPO_ROOT


def _find_data() -> Path | None:
    from ml.data import resolve_root

    root = resolve_root()
    if not root.is_absolute():
        root = REPO_ROOT / root
    return root.resolve() if (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Fashion-MNIST on this machine; tests never download it."""
    root = _find_data()
    if root is None:
        pytest.skip("Fashion-MNIST not found: set FASHION_MNIST_ROOT to a folder holding FashionMNIST/raw/")
    os.environ["FASHION_MNIST_ROOT"] = str(root)  # for the worker and benchmark processes tests start
    return root


@pytest.fixture(scope="session")
def dataset(data_root: Path):
    from ml import data

    return data.load(data_root, download=False)


# --- the service: a private Redis and real worker processes --------------------------------


@pytest.fixture(scope="session")
def redis_server():
    from devtools.redis_server import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> Iterator[str]:
    """The private server, emptied before each test (never the system Redis); audited after it."""
    from tests.integration.keys_audit import unbounded_keys

    redis_server.client().flushall()
    yield redis_server.url
    assert unbounded_keys(redis_server.client()) == []


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def shared_worker(redis_server, logs):
    """One two-process worker node shared by the tests that do not stop or kill workers."""
    from devtools.local import LocalWorker

    w = LocalWorker(redis_server.url, "shared", logs, concurrency=2, max_batch_wait_ms=50).wait_ready()
    yield w
    w.stop()


@pytest.fixture
def worker(shared_worker, redis_url):
    assert shared_worker.alive(), shared_worker.tail()
    return shared_worker


@pytest.fixture
def fleet(logs):
    """A Redis server and workers of one test's own, for tests that stop, kill or restart things."""
    from devtools.local import Fleet
    from tests.integration.keys_audit import unbounded_keys

    with Fleet(logs) as f:
        yield f
        assert unbounded_keys(f.redis.client()) == []


@pytest.fixture
def client(redis_url):
    from producer.client import TaggerClient

    with TaggerClient(redis_url=redis_url) as c:
        yield c


@pytest.fixture(scope="session")
def test_images(data_root: Path) -> list[tuple[bytes, int]]:
    """The first 500 Fashion-MNIST test images as PNG files, with their labels."""
    from devtools.images import fashion_pngs

    pngs, labels = fashion_pngs(500, str(data_root))
    return list(zip(pngs, labels))


@pytest.fixture(scope="session")
def image_server(test_images):
    """A real local HTTP server (devtools.image_server) with the first 100 test images as /files/i<n>.png,
    and routes that are slow, fail, redirect, or send too much or the wrong type."""
    from devtools.image_server import ImageServer

    with ImageServer({f"i{i}.png": png for i, (png, _) in enumerate(test_images[:100])}) as server:
        yield server


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault tests' accounting, as docs/guarantees.md shows it; a loud line if data was missing."""
    from tests.integration import accounting

    if _find_data() is None:
        terminalreporter.section("Fashion-MNIST NOT FOUND: every test that needs it was skipped", red=True)

    if not accounting.REPORT:
        return
    tr = terminalreporter
    tr.section("fault report (lost and duplicated must be 0)")
    tr.write_line(f"{'test':<48} {'sent':>6} {'tagged':>7} {'failed':>7} {'lost':>5} {'dup.':>5}")
    for row in accounting.REPORT:
        tr.write_line(f"{row['test']:<48} {row['sent']:>6} {row['tagged']:>7} {row['failed']:>7} "
                      f"{row['lost']:>5} {row['duplicated']:>5}")
        if row.get("where"):
            tr.write_line(f"    the lost jobs' messages: {row['where']}", red=True)
