"""What a pool process does with one batch: parse, count attempts, decode, classify, publish.

Per-job isolation: a job whose message, image or attempt count is bad gets its own
`failed` result; the rest of the batch is tagged in one forward pass. Jobs that were
delivered before without a result (their batch died) run one at a time, so a job
that kills its process takes nothing else down with it and ends in the dead-letter
stream after `max_attempts`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import ValidationError

from ml.preprocess import ImageError, Limits, preprocess
from ml.taxonomy import TAXONOMY
from producer.messages import JOB_ID_PATTERN, DecodeError, ErrorCode, Job, Score, Status, TagResult, Timings
from worker import inference
from worker.publish import Publisher
from worker.settings import WorkerSettings
from worker.stats import BatchReport

logger = logging.getLogger(__name__)
# Test hook (never set in production): a job with this product id kills its process,
# the way a decoder crash would, to exercise redelivery and dead-lettering.
CRASH_HOOK_ENV = "TAGGER_TEST_CRASH_PRODUCT_ID"


@lru_cache(maxsize=1)
def settings() -> WorkerSettings:
    return WorkerSettings()


@lru_cache(maxsize=1)
def publisher() -> Publisher:
    return Publisher(settings())  # one Redis connection pool per process, made after the fork


@lru_cache(maxsize=1)
def limits() -> Limits:
    s = settings()
    return Limits(max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels)


def parse_message(body: bytes | str, worker: str | None = None) -> tuple[list[Job], list[TagResult]]:
    """A Celery message body -> valid jobs, and failed results for the invalid ones we can name."""
    now = time.time()
    try:
        args, _kwargs, _embed = json.loads(body)
        raw_jobs = args[0]
        if not isinstance(raw_jobs, list):
            raise TypeError("args[0] is not a list of jobs")
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise DecodeError(f"not a tagger message: {exc}") from None
    jobs, failures = [], []
    for raw in raw_jobs:
        try:
            jobs.append(Job.model_validate(raw))
        except ValidationError as exc:
            job_id = raw.get("job_id") if isinstance(raw, dict) else None
            if not isinstance(job_id, str) or not _valid_job_id(job_id):
                logger.error("dropped a job without a usable job id: %s", _short(exc))
                continue
            product = raw.get("product_id")
            failures.append(failure(job_id, product if isinstance(product, str) else "",
                                    ErrorCode.INVALID_JOB, f"invalid job: {_short(exc)}", now, 1, worker,
                                    enqueued=raw.get("enqueued_at")))
    return jobs, failures


def failure(job_id: str, product_id: str, code: ErrorCode, message: str, started: float, batch_size: int,
            worker: str | None, attempts: int = 1, enqueued: Any = None,
            metadata: dict[str, Any] | None = None) -> TagResult:
    enq = enqueued if isinstance(enqueued, (int, float)) else started
    return TagResult(job_id=job_id, product_id=product_id, status=Status.FAILED, error_code=code, error=message,
                     timings=Timings(enqueued_at=enq, started_at=started, finished_at=time.time(),
                                     batch_size=batch_size),
                     attempts=attempts, worker=worker, metadata=metadata or {})


def classify(clf: inference.Classifier, jobs: list[Job], attempts: dict[str, int],
             report: BatchReport, worker: str | None) -> list[TagResult]:
    """Decode each job on its own, then one forward pass for all that decoded."""
    started = time.time()
    t = time.perf_counter()
    crash_on = os.environ.get(CRASH_HOOK_ENV)
    images, ok, results = [], [], []

    def failed(job: Job, code: ErrorCode, message: str) -> TagResult:
        return failure(job.job_id, job.product_id, code, message, started, len(jobs), worker,
                       attempts.get(job.job_id, 1), job.enqueued_at, job.metadata)

    for job in jobs:
        if crash_on and job.product_id == crash_on:
            os._exit(70)
        try:
            images.append(preprocess(job.image_bytes(), limits()))
            ok.append(job)
        except ImageError as exc:
            results.append(failed(job, ErrorCode(exc.code), str(exc)))
        except DecodeError as exc:
            results.append(failed(job, ErrorCode.INVALID_JOB, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad image never fails its batch
            logger.exception("job %s: unexpected preprocessing error", job.job_id)
            results.append(failed(job, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
    report.seconds["decode"] += time.perf_counter() - t
    if ok:
        t = time.perf_counter()
        pred = clf.predict(np.stack(images))
        report.seconds["forward"] += time.perf_counter() - t
        report.forward_passes += 1
        if len(pred.top_ids) != len(ok):
            raise RuntimeError(f"model returned {len(pred.top_ids)} predictions for {len(ok)} images")
        finished = time.time()
        info = clf.checkpoint
        threshold = settings().review_threshold
        for job, ids, scores in zip(ok, pred.top_ids.tolist(), pred.top_scores.tolist()):
            top = [Score(label=clf.classes[i], label_id=i, score=s) for i, s in zip(ids, scores)]
            tax = TAXONOMY.get(top[0].label)
            results.append(TagResult(
                job_id=job.job_id, product_id=job.product_id, status=Status.TAGGED,
                label=top[0].label, label_id=top[0].label_id, confidence=top[0].score, top3=top,
                category=tax.category if tax else None, department=tax.department if tax else None,
                needs_review=top[0].score < threshold,
                model=info.arch, model_version=info.version,
                timings=Timings(enqueued_at=job.enqueued_at, started_at=started, finished_at=finished,
                                batch_size=len(jobs)),
                attempts=attempts.get(job.job_id, 1), worker=worker, metadata=job.metadata))
    for job in jobs:
        report.queue_wait_s += max(0.0, started - job.enqueued_at)
    return results


def run_batch(payload: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Entry point in the pool process.

    `payload`: the batch's message bodies, or the Redis key holding them (large batches).
    `ctx`: checkpoint, generation, hostname.
    """
    s = settings()
    pub = publisher()
    report = BatchReport()
    worker = ctx.get("hostname")
    started = time.time()

    t = time.perf_counter()
    bodies = payload["bodies"] if "bodies" in payload else pub.take_batch(payload["key"])
    jobs, early = _parse_all(bodies, worker, report)
    report.seconds["parse"] += time.perf_counter() - t
    t = time.perf_counter()
    counts = pub.count_attempts([j.job_id for j in jobs])
    report.seconds["attempts"] += time.perf_counter() - t
    attempts = {j.job_id: n for j, (n, _) in zip(jobs, counts)}
    report.jobs = len(jobs) + len(early)

    fresh, suspects, dead = [], [], []
    for job, (n, done) in zip(jobs, counts):
        if done:
            report.duplicates += 1  # already has its final result: nothing to do
        elif n > s.max_attempts:
            dead.append(job)
            early.append(failure(job.job_id, job.product_id, ErrorCode.TOO_MANY_ATTEMPTS,
                                 f"gave up after {n - 1} deliveries without a result (dead-lettered)",
                                 started, 1, worker, n - 1, job.enqueued_at, job.metadata))
        elif n > 1:
            suspects.append(job)
        else:
            fresh.append(job)

    clf = inference.get(ctx["checkpoint"], ctx["generation"], s.device, s.torch_threads)
    report.model = clf.info()
    stored = _publish(pub, early, report)
    newly_failed = {r.job_id for r, new in zip(early, stored) if new}
    for job in dead:  # only with its first final result: a job delivered again lands there once
        if job.job_id in newly_failed:
            pub.dead_letter(job, f"no result after {attempts[job.job_id] - 1} deliveries", attempts[job.job_id] - 1)
            report.dead_lettered += 1
    if fresh:
        _publish(pub, classify(clf, fresh, attempts, report, worker), report)
    for job in isolation_order(suspects, attempts):
        report.isolated += 1
        _publish(pub, classify(clf, [job], attempts, report, worker), report)
    return asdict(report)


def isolation_order(suspects: list[Job], attempts: dict[str, int]) -> list[Job]:
    """The order in which redelivered jobs run, one at a time.

    One of them may be what killed the last batch. The order flips with each delivery,
    so jobs queued behind a crashing job run before it on the next delivery instead of
    sharing its fate until they are dead-lettered with it. It starts from enqueue
    time: redelivery order means nothing (requeueing reverses it).
    """
    if not suspects:
        return []
    flip = min(attempts[j.job_id] for j in suspects) % 2 == 1
    return sorted(suspects, key=lambda j: (j.enqueued_at, j.job_id), reverse=flip)


def _parse_all(bodies: list[bytes | str], worker: str | None, report: BatchReport) -> tuple[list[Job], list[TagResult]]:
    """Jobs of all messages (first copy of each job id) and failed results for invalid jobs."""
    jobs: list[Job] = []
    invalid: list[TagResult] = []
    for body in bodies:
        try:
            ok, bad = parse_message(body, worker)
        except DecodeError as exc:
            report.invalid_messages += 1
            logger.error("rejected a malformed message: %s", exc)
            continue
        jobs += ok
        invalid += bad
    unique = list({j.job_id: j for j in reversed(jobs)}.values())[::-1]
    report.duplicates += len(jobs) - len(unique)
    return unique, invalid


def describe_model(ctx: dict[str, Any]) -> dict[str, Any]:
    """Load (or swap to) the context's checkpoint in this process and describe it."""
    s = settings()
    return inference.get(ctx["checkpoint"], ctx["generation"], s.device, s.torch_threads).info()


def warm_up() -> None:
    """Load the configured model at process start, so the first batch does not wait for it."""
    s = settings()
    inference.get(str(s.checkpoint), 0, s.device, s.torch_threads)


def _publish(pub: Publisher, results: list[TagResult], report: BatchReport) -> list[bool]:
    if not results:
        return []
    t = time.perf_counter()
    stored = pub.publish(results)
    report.seconds["publish"] += time.perf_counter() - t
    for r, new in zip(results, stored):
        if not new:
            report.duplicates += 1
        elif r.status is Status.TAGGED:
            report.tagged += 1
        else:
            report.failed += 1
    return stored


def _valid_job_id(job_id: str) -> bool:
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
