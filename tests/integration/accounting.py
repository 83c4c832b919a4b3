"""Accounting for the fault tests: every job sent ends tagged, failed, lost or duplicated.

Lost (no final result) and duplicated (more than one final result on the results stream)
must be 0. The rows are collected in REPORT, which the test run prints at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

from tests.integration.keys_audit import unbounded_keys
from wire.messages import Job, Status

# Short timeouts so each test takes seconds: a lost worker's messages come back after 4 s.
FAST = dict(visibility_timeout_s=4, restore_interval_s=1, max_batch_wait_ms=20)
# Workers that fetch URL jobs from the tests' image server (tests/conftest.py: image_server), with short timeouts.
URL_SETTINGS = dict(url_allowlist="127.0.0.1,.localhost", fetch_read_timeout_s=1, fetch_deadline_s=3)
REPORT: list[dict[str, object]] = []


def account(name: str, client, job_ids: list[str], timeout: float = 90.0) -> dict[str, int]:
    """Wait for every job's final result, then count what the backend and the stream hold; audit the keys."""
    deadline = time.monotonic() + timeout
    results = {}
    while time.monotonic() < deadline and len(results) < len(job_ids):
        results.update(client.fetch([j for j in job_ids if j not in results]))
        time.sleep(0.2)
    streamed = Counter(r.job_id for r in client.results())
    row = {
        "test": name,
        "sent": len(job_ids),
        "tagged": sum(r.status is Status.TAGGED for r in results.values()),
        "failed": sum(r.status is Status.FAILED for r in results.values()),
        "lost": len(set(job_ids) - set(results)),
        "duplicated": sum(n - 1 for j, n in streamed.items() if n > 1),
        "streamed": sum(streamed[j] > 0 for j in job_ids),
    }
    if row["lost"]:  # where the missing jobs' messages are, for the failure message
        r, queue = client.redis, client.settings.queue
        row["where"] = {"queue": r.llen(queue), "inflight": r.llen(f"{queue}:inflight"), "unacked": r.hlen("unacked"),
                        "dead_letters": r.xlen(client.settings.dead_letter_stream),
                        "restore_mutex_ttl": r.ttl("unacked_mutex")}
    REPORT.append(row)
    assert unbounded_keys(client.redis, client.settings) == [], name
    return row


def jobs_from(images, n: int, prefix: str, server=None, url_every: int = 10) -> list[Job]:
    """`n` jobs of the test images; with an image `server` (devtools.image_server), every `url_every`-th
    is a URL job for one of the files it serves."""
    def job(i: int) -> Job:
        if server is not None and i % url_every == 0:
            return Job.from_url(server.url(f"files/i{i % 100}.png"), f"{prefix}-{i}", job_id=f"{prefix}-{i}")
        return Job.from_bytes(images[i % len(images)][0], f"{prefix}-{i}", job_id=f"{prefix}-{i}")

    return [job(i) for i in range(n)]


def flood(client, images, n: int, prefix: str, chunk_size: int, server=None) -> list[Job]:
    """Submit `n` jobs and give the workers a moment, so that the fault a test causes next lands mid-run."""
    jobs = jobs_from(images, n, prefix, server)
    client.submit_jobs(jobs, chunk_size=chunk_size)
    time.sleep(0.3)
    return jobs


def until(condition: Callable[[], Any], timeout: float) -> bool:
    """Whether `condition()` became true within `timeout` seconds (checked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
