"""How many jobs wait in the queue, not only how many messages: a bulk message holds up to 64.

One Lua call reads the job-count header of every message (exact) or, in a deep queue, of a
sample from both ends (estimated: messages x mean jobs per sampled message). A message
without the header (another sender) is counted in its body, as the worker counts it.
Used by `python -m producer queue --jobs` and the workers' `tagger_queue_jobs` gauge.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import redis

from wire.envelope import JOBS_HEADER, count_jobs

SAMPLE = 200  # messages read from each end of a deep queue
QUEUE_JOBS = (Path(__file__).with_name("lua") / "queue_jobs.lua").read_text()


@dataclass(frozen=True)
class QueueDepth:
    messages: int
    jobs: int
    exact: bool  # every message was read (else `jobs` is estimated from a sample)


def queue_depth(client: redis.Redis, queue: str, cap: int, sample: int = SAMPLE) -> QueueDepth:
    """Messages and jobs waiting in `queue`; `cap`: the most jobs one message may carry."""
    length, *counts = client.eval(QUEUE_JOBS, 1, queue, sample)
    jobs = sum(c if isinstance(c, int) else _jobs_in(c, cap) for c in counts)
    if len(counts) >= length:
        return QueueDepth(int(length), int(jobs), True)
    return QueueDepth(int(length), round(jobs * length / len(counts)), False)


def _jobs_in(item: bytes, cap: int) -> int:
    """A message without the header: its jobs counted in its body (a queue item that is no message: 1)."""
    try:
        envelope = json.loads(item)
        return count_jobs(envelope.get("headers"), base64.b64decode(envelope["body"]), JOBS_HEADER, cap)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return 1
