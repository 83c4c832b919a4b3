"""Celery's own remote control against real workers: every call leaves Redis bounded; `inspect reserved`
lists what the batcher holds."""

from __future__ import annotations

import time

from celery import Celery
from redis import Redis

from devtools.local import celery_json
from tests.integration.keys_audit import unbounded_keys

INSPECT = ("ping", "stats", "active", "reserved", "registered", "batching", "model", "active_queues")


def test_a_hundred_inspect_and_control_calls_leave_no_unbounded_key(worker, redis_url) -> None:
    from worker.app import app as worker_app

    app = Celery(broker=redis_url)  # configured as `celery -A worker` is, so the transport is the worker's
    app.conf.broker_transport_options = worker_app.conf.broker_transport_options
    answered = 0
    try:
        for i in range(96):
            if i % 4 == 3:
                replies = app.control.broadcast("enable_events" if i % 8 == 3 else "disable_events", reply=True,
                                                timeout=2, destination=[worker.node])
            else:
                replies = [app.control.inspect(timeout=2, destination=[worker.node])._request(INSPECT[i % 8])]
            answered += any(worker.node in (r or {}) for r in replies)
    finally:
        app.close()
    # and the command line itself, as an operator or a health check runs it
    for command in ("ping", "active", "reserved", "batching"):
        answered += worker.node in celery_json(redis_url, "inspect", command, "-t", "5")
    assert answered == 100
    assert unbounded_keys(Redis.from_url(redis_url)) == []
    assert worker.control("ping") == {"ok": "pong"}


def test_inspect_reserved_lists_the_messages_waiting_in_the_batcher(fleet, test_images) -> None:
    w = fleet.worker("w", concurrency=1, max_batch_wait_ms=8000).wait_ready()  # a batch closes after 8 s
    client = fleet.client()
    handles = client.submit_many([(png, f"r{i}") for i, (png, _) in enumerate(test_images[:3])], chunk_size=1)
    deadline = time.monotonic() + 7
    reserved: list = []
    while len(reserved) < 3 and time.monotonic() < deadline:
        reserved = celery_json(fleet.url, "inspect", "reserved", "-t", "5")[w.node]
    assert len(reserved) == 3, reserved
    assert {r["name"] for r in reserved} == {"tagger.tag"} and {r["jobs"] for r in reserved} == {1}
    assert {r["args"] for r in reserved} == {"<1 jobs>"} and all(r["hostname"] == w.node for r in reserved)
    assert len(client.wait([h.job_id for h in handles], timeout=30)) == 3
    assert celery_json(fleet.url, "inspect", "reserved", "-t", "5")[w.node] == []
