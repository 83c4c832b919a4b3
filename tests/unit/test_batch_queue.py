"""worker.consumer.batch_queue: batches close at max jobs or max wait."""

from __future__ import annotations

import pytest

from worker.consumer.batch_queue import BatchQueue


def test_batch_queue_validates_its_configuration() -> None:
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError):
            BatchQueue(bad, 0.01)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BatchQueue(8, -0.001)
    with pytest.raises(ValueError):
        BatchQueue(8, 0.01).put("x", 0, 0.0)


def test_batch_closes_at_max_size_counting_jobs_not_messages() -> None:
    q: BatchQueue[str] = BatchQueue(max_batch_size=10, max_wait_s=1.0)
    q.put("a", 4, now=0.0)
    q.put("b", 4, now=0.1)
    assert not q.ready(now=0.2)
    q.put("c", 4, now=0.2)  # 12 jobs waiting
    assert q.ready(now=0.2)
    batch = q.take()
    assert [p.item for p in batch] == ["a", "b"] and q.jobs == 4 and len(q) == 1


def test_batch_closes_when_the_oldest_job_has_waited_max_wait() -> None:
    q: BatchQueue[str] = BatchQueue(max_batch_size=100, max_wait_s=0.05)
    assert q.deadline() is None and not q.ready(now=10.0)
    q.put("a", 1, now=1.00)
    q.put("b", 1, now=1.04)
    assert q.deadline() == pytest.approx(1.05)
    assert not q.ready(now=1.049)
    assert q.ready(now=1.05)
    assert [p.item for p in q.take()] == ["a", "b"]
    assert q.deadline() is None


def test_a_message_larger_than_a_batch_goes_alone_and_nothing_is_split() -> None:
    q: BatchQueue[str] = BatchQueue(max_batch_size=8, max_wait_s=0.0)
    q.put("big", 20, now=0.0)
    q.put("small", 1, now=0.0)
    assert [p.item for p in q.take()] == ["big"]
    assert [p.item for p in q.take()] == ["small"]
    assert q.take() == [] and q.jobs == 0


def test_a_batch_put_back_comes_out_first_and_whole() -> None:
    q = BatchQueue(max_batch_size=4, max_wait_s=0.01)
    for name, jobs in (("a", 2), ("b", 2), ("c", 1)):
        q.put(name, jobs, now=0.0)
    batch = q.take()
    assert [p.item for p in batch] == ["a", "b"] and q.jobs == 1
    q.put_back(batch)  # Redis refused its key: it waits, in its order, with its arrival times
    assert q.jobs == 5 and q.deadline() == 0.01
    assert [p.item for p in q.take()] == ["a", "b"] and [p.item for p in q.take()] == ["c"]
