"""Collect results, sending again the jobs that have none after a while: for a Redis that fails over.

An asynchronous replica can be promoted without the primary's last writes: a job the client
was told is queued may be gone. Sending it again under the same job id is safe, because a
job's final result is written once per job id (SET NX): a job that was not lost gets one
result all the same.

    results, resent = collect(client, jobs, timeout=600, resubmit_after=120)
"""

from __future__ import annotations

import time
from typing import Sequence

from producer.client import TaggerClient
from producer.errors import ResultTimeout
from wire.messages import Job, TagResult


def collect(client: TaggerClient, jobs: Sequence[Job], timeout: float, resubmit_after: float,
            chunk_size: int | None = None, poll_s: float = 0.2) -> tuple[dict[str, TagResult], list[str]]:
    """Every job's final result; a job still without one `resubmit_after` seconds after it was last
    sent is sent again. Returns the results and the ids sent again (once per resend).

    Raises ResultTimeout (its `missing` lists the jobs without a result) after `timeout` seconds.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = {j.job_id: j for j in jobs}
    sent_at = dict.fromkeys(pending, started)
    results: dict[str, TagResult] = {}
    resent: list[str] = []
    while pending:
        for job_id, result in client.fetch(list(pending)).items():
            results[job_id] = result
            del pending[job_id]
        now = time.monotonic()
        if not pending:
            break
        if now >= deadline:
            raise ResultTimeout(f"{len(pending)} of {len(jobs)} results missing after {timeout} s", list(pending))
        overdue = [job for job_id, job in pending.items() if now - sent_at[job_id] >= resubmit_after]
        if overdue:
            client.submit_jobs(overdue, chunk_size=chunk_size)
            resent += [j.job_id for j in overdue]
            sent_at.update(dict.fromkeys((j.job_id for j in overdue), time.monotonic()))
        time.sleep(poll_s)
    return results, resent
