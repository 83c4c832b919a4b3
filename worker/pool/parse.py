"""Message bodies in: jobs out, or a clear DecodeError; job ids found even in a body that will not parse.

Any Celery sender's body is accepted: `tag(jobs)` with a list of jobs or a single job, as the
first positional argument or as the keyword `jobs`. A job without a `job_id` takes its
message's task id (the i-th of several: `<task id>-<i>`), so a redelivered message gives
its jobs the same ids again and every job, even one whose id is unusable, gets a result.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field

from wire.errors import DecodeError, ErrorCode
from wire.messages import JOB_ID_PATTERN, PRODUCT_ID_MAX, Job, TagResult
from worker.pool.results import failure

logger = logging.getLogger(__name__)
JOB_ID_IN_RAW = re.compile(rb'"job_id"\s*:\s*"([A-Za-z0-9._:@-]{1,128})"')


@dataclass
class Message:
    """One task message of a batch: its body, and what the consumer process knows of it."""

    body: bytes | str
    id: str = ""  # the task id
    redelivered: bool = False  # Redis delivered it before (kombu marks a restored message)
    reply: bool = False  # a standard sender (no ignore_result): its result goes under its task id too
    skip: str = ""  # "revoked" or "expired": not run, its jobs fail with that code
    job_ids: list[str] = field(default_factory=list)  # its jobs, in order, once parsed
    unreadable: str = ""  # why its body could not be parsed, if it could not

    @classmethod
    def from_payload(cls, body: bytes | str, meta: dict[str, object]) -> "Message":
        return cls(body, str(meta.get("id") or ""), bool(meta.get("redelivered")), bool(meta.get("reply")),
                   str(meta.get("skip") or ""))


def parse_message(body: bytes | str, worker: str | None = None, task_id: str = "",
                  max_jobs: int = 1024) -> tuple[list[Job], list[TagResult], list[str]]:
    """A Celery message body -> valid jobs, failed results for the invalid ones, and every job id in order.

    Raises only DecodeError, whatever the body holds (JSON nested a thousand deep included),
    and for a message of more than `max_jobs` jobs (its cost would grow without bound).
    """
    now = time.time()
    try:
        args, kwargs, _embed = json.loads(body)
        raw_jobs = args[0] if args else kwargs["jobs"]
        if isinstance(raw_jobs, dict):  # one job, not in a list
            raw_jobs = [raw_jobs]
        if not isinstance(raw_jobs, list):
            raise TypeError("the jobs are not a list of jobs nor one job")
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, ...: all mean "not readable"
        raise DecodeError(f"not a tagger message: {type(exc).__name__}: {_short(exc)}") from None
    if len(raw_jobs) > max_jobs:
        raise DecodeError(f"the message holds {len(raw_jobs):,} jobs; the limit is {max_jobs:,} "
                          f"(TAGGER_MAX_JOBS_PER_MESSAGE)")
    jobs, failures, ids = [], [], []
    for i, raw in enumerate(raw_jobs):
        if task_id and isinstance(raw, dict) and "job_id" not in raw:
            raw = {**raw, "job_id": _derived_id(task_id, i, len(raw_jobs))}
        try:
            jobs.append(Job.model_validate(raw))
            ids.append(jobs[-1].job_id)
        except Exception as exc:  # noqa: BLE001 - ValidationError, or anything odd pydantic meets
            job_id = raw.get("job_id") if isinstance(raw, dict) else None
            if not isinstance(job_id, str) or not _valid_job_id(job_id):
                job_id = _derived_id(task_id, i, len(raw_jobs)) if task_id else ""
            if not job_id:
                logger.error("dropped a job without a usable job id: %s", _short(exc))
                continue
            product = raw.get("product_id") if isinstance(raw, dict) else None  # echoed back: at most a valid one
            failures.append(failure(job_id, product[:PRODUCT_ID_MAX] if isinstance(product, str) else "",
                                    ErrorCode.INVALID_JOB, f"invalid job: {_short(exc)}", now, 1, worker,
                                    enqueued=raw.get("enqueued_at") if isinstance(raw, dict) else None))
            ids.append(job_id)
    return jobs, failures, ids


def _derived_id(task_id: str, index: int, jobs: int) -> str:
    """The id of a job that brought none: its message's task id (the i-th of several: `<task id>-<i>`)."""
    return task_id if jobs == 1 else f"{task_id[:120]}-{index}"


def job_ids_in(body: bytes | str) -> list[str]:
    """The job ids a body names, found without parsing it (it may not parse): for their final results."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    return list(dict.fromkeys(m.decode() for m in JOB_ID_IN_RAW.findall(raw)))


def _valid_job_id(job_id: str) -> bool:
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
