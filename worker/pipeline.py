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
import math
import os
import re
import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any, Sequence

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
# Test hooks (never set in production): a job with this product id kills its process, the
# way a decoder crash would; a message whose raw body holds this marker kills its process
# before it is parsed. They exercise redelivery and dead-lettering of jobs and of messages.
CRASH_HOOK_ENV = "TAGGER_TEST_CRASH_PRODUCT_ID"
CRASH_MESSAGE_HOOK_ENV = "TAGGER_TEST_CRASH_MESSAGE_MARKER"


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
    """A Celery message body -> valid jobs, and failed results for the invalid ones we can name.

    Raises only DecodeError, whatever the body holds (JSON nested a thousand deep included).
    """
    now = time.time()
    try:
        args, _kwargs, _embed = json.loads(body)
        raw_jobs = args[0]
        if not isinstance(raw_jobs, list):
            raise TypeError("args[0] is not a list of jobs")
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, ...: all mean "not readable"
        raise DecodeError(f"not a tagger message: {type(exc).__name__}: {_short(exc)}") from None
    jobs, failures = [], []
    for raw in raw_jobs:
        try:
            jobs.append(Job.model_validate(raw))
        except Exception as exc:  # noqa: BLE001 - ValidationError, or anything odd pydantic meets
            job_id = raw.get("job_id") if isinstance(raw, dict) else None
            if not isinstance(job_id, str) or not _valid_job_id(job_id):
                logger.error("dropped a job without a usable job id: %s", _short(exc))
                continue
            product = raw.get("product_id")
            failures.append(failure(job_id, product if isinstance(product, str) else "",
                                    ErrorCode.INVALID_JOB, f"invalid job: {_short(exc)}", now, 1, worker,
                                    enqueued=raw.get("enqueued_at")))
    return jobs, failures


JOB_ID_IN_RAW = re.compile(rb'"job_id"\s*:\s*"([A-Za-z0-9._:@-]{1,128})"')


def job_ids_in(body: bytes | str) -> list[str]:
    """The job ids a body names, found without parsing it (it may not parse): for their final results."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    return list(dict.fromkeys(m.decode() for m in JOB_ID_IN_RAW.findall(raw)))


def failure(job_id: str, product_id: str, code: ErrorCode, message: str, started: float, batch_size: int,
            worker: str | None, attempts: int = 1, enqueued: Any = None,
            metadata: dict[str, Any] | None = None) -> TagResult:
    real = isinstance(enqueued, (int, float)) and not isinstance(enqueued, bool) and math.isfinite(enqueued)
    enq = enqueued if real else started
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

    `payload`: the batch's message bodies (or the Redis key holding them, for large batches),
    and per message its id and whether Redis delivered it before.
    `ctx`: checkpoint, generation, hostname.

    Message-level isolation, as for jobs: a message Redis delivers again (its batch died)
    runs alone, in an order that flips with each delivery, and after `max_attempts`
    deliveries it is dead-lettered unread, its job ids (found in the raw bytes) failed.
    """
    s = settings()
    pub = publisher()
    report = BatchReport()
    worker = ctx.get("hostname")

    t = time.perf_counter()
    bodies = payload["bodies"] if "bodies" in payload else pub.take_batch(payload["key"])
    metas = payload.get("messages") or [{} for _ in bodies]
    again = [i for i, m in enumerate(metas) if m.get("redelivered")]
    deliveries = [1] * len(bodies)
    for i, n in zip(again, pub.count_redeliveries([str(metas[i].get("id")) for i in again])):
        deliveries[i] = 1 + n
    report.seconds["parse"] += time.perf_counter() - t

    clf = inference.get(ctx["checkpoint"], ctx["generation"], s.device, s.torch_threads)
    report.model = clf.info()
    fresh = [b for b, n in zip(bodies, deliveries) if n == 1]
    # by id, not as delivered (requeueing reverses the order), then flipped with each delivery
    suspects = sorted(((str(m.get("id")), b, n) for b, m, n in zip(bodies, metas, deliveries)
                       if 1 < n <= s.max_attempts), key=lambda x: x[0])
    for body, n in zip(bodies, deliveries):
        if n > s.max_attempts:
            _give_up_message(pub, body, n - 1, report, worker)
    if fresh:
        _run_messages(pub, clf, fresh, report, worker)
    # max: the poison's count rises with every delivery (the others' start over once they run)
    flip = bool(suspects) and max(n for *_, n in suspects) % 2 == 1
    for message_id, body, _n in (reversed(suspects) if flip else suspects):
        report.isolated_messages += 1
        _run_messages(pub, clf, [body], report, worker, redelivered=[message_id])
    return asdict(report)


def _give_up_message(pub: Publisher, body: bytes | str, deliveries: int, report: BatchReport,
                     worker: str | None) -> None:
    """A message whose batch died `deliveries` times: dead-letter it unread, fail its jobs."""
    reason = f"its batch died {deliveries} times without a result (message-level poison)"
    ids = job_ids_in(body)
    now = time.time()
    stored = _publish(pub, [failure(j, "", ErrorCode.TOO_MANY_ATTEMPTS, f"gave up: {reason} (dead-lettered)", now,
                                    1, worker, deliveries) for j in ids], report)
    if ids and not any(stored):  # it ran before, beside the real poison: every job already has its result
        return
    logger.error("dead-lettered a message: %s", reason)
    pub.dead_letter_message(body, reason, deliveries)
    report.dead_lettered_messages += 1


def _run_messages(pub: Publisher, clf: inference.Classifier, bodies: list[bytes | str], report: BatchReport,
                  worker: str | None, redelivered: Sequence[str] = ()) -> None:
    """Parse, count job attempts, classify and publish the jobs of these messages.

    `redelivered`: ids of those messages that Redis delivered again; once their jobs are
    counted, their message-level count starts over.
    """
    s = settings()
    started = time.time()
    if marker := os.environ.get(CRASH_MESSAGE_HOOK_ENV):
        if any(marker.encode() in (b.encode() if isinstance(b, str) else b) for b in bodies):
            os._exit(71)
    t = time.perf_counter()
    jobs, early = _parse_all(pub, bodies, worker, report)
    report.seconds["parse"] += time.perf_counter() - t
    t = time.perf_counter()
    counts = pub.count_attempts([j.job_id for j in jobs], redelivered)
    report.seconds["attempts"] += time.perf_counter() - t
    attempts = {j.job_id: n for j, (n, _) in zip(jobs, counts)}
    report.jobs += len(jobs) + len(early)

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


def _parse_all(pub: Publisher, bodies: list[bytes | str], worker: str | None,
               report: BatchReport) -> tuple[list[Job], list[TagResult]]:
    """Jobs of all messages (first copy of each job id) and failed results for invalid jobs.

    A body that cannot be read is dead-lettered with its raw bytes; the job ids it names
    get a final `invalid_message` result.
    """
    jobs: list[Job] = []
    invalid: list[TagResult] = []
    for body in bodies:
        try:
            ok, bad = parse_message(body, worker)
        except DecodeError as exc:
            report.invalid_messages += 1
            logger.error("dead-lettered a malformed message: %s", exc)
            pub.dead_letter_message(body, str(exc), 1)
            now = time.time()
            invalid += [failure(j, "", ErrorCode.INVALID_MESSAGE, f"its message could not be read: {exc}", now, 1,
                                worker) for j in job_ids_in(body)]
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
