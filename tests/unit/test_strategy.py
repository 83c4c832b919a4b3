"""worker.consumer.strategy's bookkeeping of batches in flight, without a broker: what happens to
batches that a consumer restart (a lost Redis connection) may have cut off from their callbacks."""

from __future__ import annotations

import time
from dataclasses import asdict
from types import SimpleNamespace

from kombu.asynchronous.timer import Timer

from worker.consumer.strategy import Batcher, InflightBatch
from worker.report import BatchReport
from worker.settings import WorkerSettings


def make_batcher(visibility_timeout_s: int) -> tuple[Batcher, SimpleNamespace]:
    consumer = SimpleNamespace(pool=SimpleNamespace(limit=2), timer=Timer(), hostname="test@host",
                               connection_errors=(ConnectionError,))
    task = SimpleNamespace(name="tagger.tag")
    settings = WorkerSettings(visibility_timeout_s=visibility_timeout_s, redis_url="redis://127.0.0.1:1/0")
    return Batcher(task, None, consumer, settings), consumer


def test_batches_in_flight_across_a_reconnect_are_given_up_after_a_visibility_timeout() -> None:
    batcher, consumer = make_batcher(visibility_timeout_s=1)
    try:
        before = InflightBatch("tagger.tag", "test@host", [])
        batcher._start(before)
        batcher.rebind(consumer)  # the consumer restarted: `before`'s callbacks may never come
        after = InflightBatch("tagger.tag", "test@host", [])
        batcher._start(after)

        batcher.abandon_stuck()  # within a visibility timeout of the restart: still waited for
        assert set(batcher.inflight) == {before.id, after.id}
        time.sleep(1.1)
        batcher.abandon_stuck()
        assert set(batcher.inflight) == {after.id}  # its slot is free, its leases no longer renewed
        assert before.abandoned and not after.abandoned and batcher.stats.batches_lost == 1

        # a batch given up that reports back after all: counted, never acknowledged (its messages
        # went back to Redis and may be in another batch by now)
        batcher._on_done(before, asdict(BatchReport()))
        batcher._on_done(after, asdict(BatchReport()))
        assert batcher.inflight == {}
        batcher.abandon_stuck()  # once per restart
        assert batcher.stats.batches_lost == 1
    finally:
        consumer.timer.stop()


def test_a_restart_with_nothing_in_flight_gives_nothing_up() -> None:
    batcher, consumer = make_batcher(visibility_timeout_s=1)
    try:
        batcher.rebind(consumer)
        later = InflightBatch("tagger.tag", "test@host", [])
        batcher._start(later)
        time.sleep(1.1)
        batcher.abandon_stuck()
        assert set(batcher.inflight) == {later.id} and not later.abandoned
    finally:
        consumer.timer.stop()
