"""A plain Celery app, as any backend configures one, for the tests that send tasks the standard way."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Any, Iterator

from celery import Celery


@contextmanager
def sender_app(url: str) -> Iterator[Celery]:
    """Broker and result backend on the same Redis (`url`); closed while that Redis still runs."""
    app = Celery("backend", broker=url, backend=url)
    try:
        yield app
    finally:
        gc.collect()  # AsyncResults unsubscribe from Redis as they go: now, not after Redis stopped
        app.close()


def settle(results: list[Any], timeout: float = 60) -> list[str]:
    """Wait for each AsyncResult's final state, whatever it is; their task ids (the results are let go)."""
    for r in results:
        r.get(timeout=timeout, propagate=False)
    ids = [r.id for r in results]
    results.clear()
    return ids
