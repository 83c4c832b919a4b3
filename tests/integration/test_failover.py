"""Redis with failover: a primary, a replica and three Sentinels on loopback; the primary is
killed mid-run, the Sentinels promote the replica, producers and workers carry on.

Replication is asynchronous: the replica can be promoted without the primary's last writes.
What the workers wrote is safe by its order (a result lost with them is followed by its
message's ack, lost too, so the message comes back and is run again); what producers wrote
last can be gone, so the producer sends again, under the same job ids, every job without a
result after a deadline (producer.resubmit). Results are written once per job id, so each
job still gets exactly one.
"""

from __future__ import annotations

import threading
import time

import redis

from devtools.local import LocalWorker
from devtools.sentinel_group import SentinelGroup
from producer.client import TaggerClient
from producer.resubmit import collect
from tests.integration.accounting import FAST, account, jobs_from
from wire.messages import Job


def drained(r: redis.Redis, queue: str, quiet_s: float = 2.0, timeout: float = 180.0) -> None:
    """Until nothing is queued, taken or unacknowledged for `quiet_s`: every job still in Redis has run."""
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        busy = r.llen(queue) + r.llen(queue + ":inflight") + r.hlen("unacked")
        since = None if busy else since or time.monotonic()
        if since is not None and time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)
    raise TimeoutError("the queue did not drain")


def test_the_primary_dies_mid_run_sentinel_promotes_the_replica_and_nothing_is_lost(logs, test_images) -> None:
    with SentinelGroup(password="s3cret-pass", sentinel_password="sentinel-pass") as group:
        assert group.url.startswith("sentinel://:s3cret-pass@127.0.0.1:") and group.url.count(";") == 2
        workers = [LocalWorker(group.url, name, logs, concurrency=1, sentinel_password="sentinel-pass", **FAST)
                   for name in ("fa", "fb")]
        try:
            run_through_a_failover(group, workers, test_images)
        finally:
            for w in workers:
                w.stop()


def run_through_a_failover(group: SentinelGroup, workers: list[LocalWorker], test_images) -> None:
    """Produce, kill the primary, produce on, then count (see the module docstring)."""
    for w in workers:
        w.wait_ready()
    client = TaggerClient(redis_url=group.url, sentinel_password="sentinel-pass")
    jobs = jobs_from(test_images, 100_000, "fo")
    sent: list[Job] = []
    errors: list[str] = []
    stop = threading.Event()

    def produce() -> None:  # 20 jobs at a time, single-job and bulk messages, as fast as Redis takes them
        while not stop.is_set():
            batch = jobs[len(sent):len(sent) + 20]
            try:
                client.submit_jobs(batch, chunk_size=1 if len(sent) % 40 else 10)
            except redis.exceptions.RedisError as exc:  # not told "queued": sent again, as a producer would
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            sent.extend(batch)
            time.sleep(0.01)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    time.sleep(2.0)
    before = len(sent)
    group.kill_primary()
    failover_s = group.wait_for_failover()
    deadline = time.monotonic() + 60  # a submission caught by the failover may fail after its retries (~13 s)
    while len(sent) < before + 1000 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=60)
    assert len(sent) >= before + 1000, (before, len(sent), errors)  # producers carried on after the failover

    # What the replica never got: jobs the producer was told were queued, with no result once
    # everything left in Redis has run. The producer sends them again, under the same ids.
    drained(client.redis, client.settings.queue)
    ids = [j.job_id for j in sent]
    missing = set(ids) - set(client.fetch(ids))
    _results, resent = collect(client, sent, timeout=120, resubmit_after=10)
    assert set(resent) == missing, (len(resent), len(missing))
    row = account(f"Redis primary killed, Sentinel failover ({len(missing)} sent again)", client, ids,
                  timeout=30)
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["tagged"] == len(sent), row
    assert all(w.alive() for w in workers), [w.tail() for w in workers]
    # the workers reconnected to the new primary; `inspect` works through Sentinel too
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(w.control("ping") == {"ok": "pong"} for w in workers):
        time.sleep(0.5)
    assert all(w.control("ping") == {"ok": "pong"} for w in workers)
    print(f"\nfailover in {failover_s:.1f} s; {len(sent)} jobs sent, {before} before the kill; "
          f"{len(missing)} lost with the primary and sent again; producer errors: {len(errors)}")
    client.close()
