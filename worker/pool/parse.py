"""Message bodies in: jobs out, or a clear DecodeError; job ids found even in a body that will not parse."""

from __future__ import annotations

import json
import logging
import re
import time

from wire.errors import DecodeError, ErrorCode
from wire.messages import JOB_ID_PATTERN, PRODUCT_ID_MAX, Job, TagResult
from worker.pool.results import failure

logger = logging.getLogger(__name__)
JOB_ID_IN_RAW = re.compile(rb'"job_id"\s*:\s*"([A-Za-z0-9._:@-]{1,128})"')


def parse_message(body: bytes | str, worker: str | None = None,
                  max_jobs: int = 1024) -> tuple[list[Job], list[TagResult]]:
    """A Celery message body -> valid jobs, and failed results for the invalid ones we can name.

    Raises only DecodeError, whatever the body holds (JSON nested a thousand deep included),
    and for a message of more than `max_jobs` jobs (its cost would grow without bound).
    """
    now = time.time()
    try:
        args, _kwargs, _embed = json.loads(body)
        raw_jobs = args[0]
        if not isinstance(raw_jobs, list):
            raise TypeError("args[0] is not a list of jobs")
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, ...: all mean "not readable"
        raise DecodeError(f"not a tagger message: {type(exc).__name__}: {_short(exc)}") from None
    if len(raw_jobs) > max_jobs:
        raise DecodeError(f"the message holds {len(raw_jobs):,} jobs; the limit is {max_jobs:,} "
                          f"(TAGGER_MAX_JOBS_PER_MESSAGE)")
    jobs, failures = [], []
    for raw in raw_jobs:
        try:
            jobs.append(Job.model_validate(raw))
        except Exception as exc:  # noqa: BLE001 - ValidationError, or anything odd pydantic meets
            job_id = raw.get("job_id") if isinstance(raw, dict) else None
            if not isinstance(job_id, str) or not _valid_job_id(job_id):
                logger.error("dropped a job without a usable job id: %s", _short(exc))
                continue
            product = raw.get("product_id")  # echoed back: never more than a valid one holds
            failures.append(failure(job_id, product[:PRODUCT_ID_MAX] if isinstance(product, str) else "",
                                    ErrorCode.INVALID_JOB, f"invalid job: {_short(exc)}", now, 1, worker,
                                    enqueued=raw.get("enqueued_at")))
    return jobs, failures


def job_ids_in(body: bytes | str) -> list[str]:
    """The job ids a body names, found without parsing it (it may not parse): for their final results."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    return list(dict.fromkeys(m.decode() for m in JOB_ID_IN_RAW.findall(raw)))


def _valid_job_id(job_id: str) -> bool:
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
