"""Redis's memory policy: a worker refuses a Redis that may evict jobs; a full Redis loses nothing.

Under `maxmemory` with `noeviction`, Redis refuses writes. On the earlier main the producer got a
raw OutOfMemoryError after part of its submission was in fact enqueued, and every worker died
(`Unrecoverable error: OutOfMemoryError`), replacements too. Here the producer gets RedisFull,
which names exactly the jobs enqueued (whole messages, a prefix), the CLI exits 6, and workers
wait for room without dying; once memory frees every job gets its one final result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import redis

from devtools.local import Fleet
from producer.errors import RedisFull
from tests.integration.accounting import FAST, account, jobs_from
from wire.messages import Job
from worker.consumer.memory_policy import EXIT_EVICTING_REDIS
from worker.settings import REPO_ROOT


def queued_job_ids(r: redis.Redis, queue: str) -> set[str]:
    """The job ids in the messages waiting in the queue, read the way the worker would (our envelope
    carries the body's JSON text; Celery's own base64 bodies declare body_encoding)."""
    import base64

    ids = set()
    for raw in r.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        ids |= {job["job_id"] for job in json.loads(body)[0][0]}
    return ids


def fill(r: redis.Redis, prefix: str) -> int:
    """Another application fills Redis to the brim (until its writes are refused for a second): keys prefix:0..n-1."""
    n, refused_since = 0, None
    while refused_since is None or time.monotonic() - refused_since < 1.0:
        try:
            r.set(f"{prefix}:{n}", b"x" * 2000)
            n, refused_since = n + 1, None
        except redis.exceptions.OutOfMemoryError:
            refused_since = refused_since or time.monotonic()
            time.sleep(0.05)
    return n


def free(r: redis.Redis, prefix: str, n: int, keep: int = 0) -> None:
    """That application deletes its keys, all but `keep` of them."""
    for start in range(keep, n, 1000):
        r.delete(*[f"{prefix}:{i}" for i in range(start, min(n, start + 1000))])


def submit_all(client, jobs: list[Job], chunk_size: int) -> int:
    """What a producer does with RedisFull: submit the jobs not enqueued again, after a pause."""
    refusals, pending = 0, jobs
    while pending:
        try:
            client.submit_jobs(pending, chunk_size=chunk_size)
            pending = []
        except RedisFull as exc:
            refusals += 1
            pending = pending[len(exc.enqueued):]
            time.sleep(0.2)
    return refusals


def test_a_worker_refuses_a_redis_whose_memory_policy_evicts_keys(logs) -> None:
    with Fleet(logs, config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}) as fleet:
        refused = fleet.worker("evicting", concurrency=1)
        assert refused.proc.wait(timeout=120) == EXIT_EVICTING_REDIS
        lines = [line for line in refused.tail(5000).splitlines() if "CRITICAL" in line]
        assert len(lines) == 1 and "maxmemory-policy is allkeys-lru" in lines[0], refused.tail()
        assert "TAGGER_ALLOW_EVICTION=1" in lines[0] and "Traceback" not in refused.tail(5000)
        allowed = fleet.worker("allowed", concurrency=1, allow_eviction=1).wait_ready()
        assert allowed.alive()


def test_a_full_redis_refuses_whole_messages_and_workers_wait_for_room(logs, test_images) -> None:
    # 24 MB: about 10,000 of these jobs queued, or 12,000 results kept (docs/operations.md)
    with Fleet(logs, config={"maxmemory": "24mb", "maxmemory-policy": "noeviction"}) as fleet:
        client = fleet.client()
        r, queue = client.redis, client.settings.queue
        jobs = jobs_from(test_images, 20_000, "full")

        # No worker yet, and another application has left Redis about 2.5 MB: whole pipelines of
        # 1,024 jobs are enqueued until one does not fit, and that one is refused whole.
        n1 = fill(r, "other-app")
        free(r, "other-app", n1, keep=n1 - 1250)
        to_the_limit = fleet.client(submit_memory_fraction=1.0)  # pushes until Redis itself refuses
        try:
            to_the_limit.submit_jobs(jobs, chunk_size=64)
            raise AssertionError("2.5 MB cannot hold 20,000 jobs")
        except RedisFull as exc:
            enqueued = exc.enqueued
            assert "Redis is full" in str(exc) and enqueued == [j.job_id for j in jobs[:len(enqueued)]], str(exc)
            assert exc.not_enqueued == [j.job_id for j in jobs[len(enqueued):]]
            assert 0 < len(enqueued) < len(jobs) and len(enqueued) % 1024 == 0, len(enqueued)
        assert queued_job_ids(r, queue) == set(enqueued)  # exactly those: nothing of the refused pipeline

        n2 = fill(r, "other-app-2")  # full to the brim now
        try:  # a client with the default headroom refuses before Redis has to
            client.submit_jobs(jobs[len(enqueued):len(enqueued) + 10], chunk_size=1)
            raise AssertionError("a full Redis accepted a submission")
        except RedisFull as exc:
            assert exc.enqueued == [] and "of its maxmemory in use" in str(exc), exc
        cli = subprocess.run([sys.executable, "-m", "producer", "--redis-url", fleet.url, "submit",
                              str(REPO_ROOT / "samples" / "fashion" / "0000_ankle-boot.png")],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 6 and "Redis is full" in cli.stderr, (cli.returncode, cli.stderr)

        # a worker that starts while Redis is full waits, alive
        first = fleet.worker("first", concurrency=1, **FAST)
        time.sleep(6)
        assert first.alive() and "Redis is full" in first.tail(20_000), first.tail()

        # memory frees: it drains the queue, the producer sends more (coming back after any RedisFull),
        # and Redis fills up again mid-run while a second worker starts
        free(r, "other-app", n1)
        free(r, "other-app-2", n2)
        first.wait_ready()
        more = jobs[len(enqueued):len(enqueued) + 4000]
        submit_all(client, more, chunk_size=16)
        n3 = fill(r, "other-app-3")
        second = fleet.worker("second", concurrency=1, **FAST)
        time.sleep(4)
        assert first.alive() and second.alive(), second.tail()
        free(r, "other-app-3", n3)
        sent = enqueued + [j.job_id for j in more]
        row = account("Redis full (noeviction): refuse, wait, go on", client, sent, timeout=180)
        assert row["lost"] == 0 and row["duplicated"] == 0 and row["tagged"] == len(sent), row
        assert first.alive() and second.alive()
        assert "Unrecoverable error" not in first.tail(200_000) + second.tail(200_000)
