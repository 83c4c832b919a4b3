"""What a pool process does with one batch: parse, count attempts, decode, classify, publish.

Per-job isolation: a job whose message, image or attempt count is bad gets its own
`failed` result; the rest of the batch is tagged in one forward pass. Jobs that were
delivered before without a result (their batch died) run one at a time, so a job
that kills its process takes nothing else down with it and ends in the dead-letter
stream after `max_attempts`. Deliveries are counted only once Redis redelivers a
message (kombu marks it), so a batch's first delivery costs no Redis call for them.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from ml import colour
from ml.preprocess import Limits
from wire.errors import DecodeError, ErrorCode
from wire.messages import Job, Status, TagResult
from worker.pool import inference
from worker.pool.classify import classify
from worker.pool.fetch import Allowlist, Fetcher, FetchPolicy
from worker.pool.parse import Message, job_ids_in, parse_message
from worker.pool.publish import Publisher, message_value
from worker.pool.results import failure
from worker.report import BatchReport, bucket
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)
# Test hook (never set in production): a message whose raw body holds this marker kills its
# process before it is parsed, to exercise message-level dead-lettering.
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
    return Limits(max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels, max_pixels_png=s.max_image_pixels_png,
                  max_pixels_webp=s.max_image_pixels_webp)


@lru_cache(maxsize=1)
def fetcher() -> Fetcher:
    """This process's URL fetcher: its threads and kept connections are made after the fork."""
    s = settings()
    policy = FetchPolicy(Allowlist(s.url_allowlist), s.max_image_bytes, s.fetch_connect_timeout_s,
                         s.fetch_read_timeout_s, s.fetch_deadline_s, s.fetch_retries, s.fetch_max_redirects)
    return Fetcher(policy, s.fetch_threads)


def run_batch(payload: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Entry point in the pool process.

    `payload`: the batch's message bodies (or the Redis key holding them, for large batches),
    and per message what the consumer process knows of it (worker.pool.parse.Message).
    `ctx`: checkpoint, generation, hostname; `outcomes`: also report each message's outcome
    (for task events).

    Message-level isolation, as for jobs: a message Redis delivers again (its batch died)
    runs alone, in an order that flips with each delivery, and after `max_attempts`
    deliveries it is dead-lettered unread, its job ids (found in the raw bytes) failed.
    """
    s = settings()
    pub = publisher()
    report = BatchReport()
    worker = ctx.get("hostname")
    known: dict[str, TagResult] = {}  # the results this batch published, by job id

    t = time.perf_counter()
    bodies = payload["bodies"] if "bodies" in payload else pub.take_batch(payload["key"])
    messages = [Message.from_payload(b, m) for b, m in zip(bodies, payload.get("messages") or [{}] * len(bodies))]
    again = [i for i, m in enumerate(messages) if m.redelivered]
    deliveries = [1] * len(messages)
    for i, n in zip(again, pub.count_redeliveries([messages[i].id for i in again])):
        deliveries[i] = 1 + n
    report.seconds["parse"] += time.perf_counter() - t

    clf = inference.get(ctx["checkpoint"], ctx["generation"], s)
    report.model = clf.info()
    fresh = [m for m, n in zip(messages, deliveries) if n == 1]
    suspects = [(m, n) for m, n in zip(messages, deliveries) if 1 < n <= s.max_attempts]
    for m, n in [(m, n) for m, n in zip(messages, deliveries) if n > s.max_attempts]:
        if pub.jobs_seen(job_ids_in(m.body)):  # it was parsed before: its jobs' own counts decide
            suspects.append((m, n))
        else:
            _give_up_message(pub, m, n - 1, report, worker, known)
    if fresh:
        _run_messages(pub, clf, fresh, report, worker, known)
    # Every batch that died held the poison, so its count is the batch's highest and rises
    # with each delivery: the order flips every time.
    suspects.sort(key=lambda x: x[0].id)  # by id, not as delivered: requeueing reverses the order
    flip = bool(suspects) and max(n for _, n in suspects) % 2 == 1
    for m, _n in (reversed(suspects) if flip else suspects):
        report.isolated_messages += 1
        _run_messages(pub, clf, [m], report, worker, known, redelivered=True)
    out = asdict(report)
    if ctx.get("outcomes"):
        out["outcomes"] = [outcome(m, known) for m in messages]
    return out


def outcome(m: Message, known: dict[str, TagResult]) -> dict[str, Any]:
    """What a task event says of a message: its jobs tagged and failed here, and the first failure."""
    results = [known[j] for j in m.job_ids if j in known]
    failed = [r for r in results if r.status is Status.FAILED]
    first = failed[0] if failed else None
    return {"id": m.id, "jobs": len(m.job_ids), "tagged": len(results) - len(failed), "failed": len(failed),
            "error": f"{first.error_code.value if first.error_code else ''}: {first.error}" if first else "",
            "skip": m.skip}


def _give_up_message(pub: Publisher, m: Message, deliveries: int, report: BatchReport, worker: str | None,
                     known: dict[str, TagResult]) -> None:
    """A message whose batch died `deliveries` times before it was ever parsed: dead-letter it
    unread; the job ids in its raw bytes get their final result."""
    reason = f"its batch died {deliveries} times before it could be read (message-level poison)"
    logger.error("dead-lettered a message: %s", reason)
    pub.dead_letter_message(m.body, reason, deliveries)
    report.dead_lettered_messages += 1
    now = time.time()
    m.job_ids, m.unreadable = job_ids_in(m.body), reason
    _publish(pub, [failure(j, "", ErrorCode.TOO_MANY_ATTEMPTS, f"gave up: {reason} (dead-lettered)", now, 1, worker,
                           deliveries) for j in m.job_ids], report, known, [m])


def _run_messages(pub: Publisher, clf: inference.Classifier, messages: list[Message], report: BatchReport,
                  worker: str | None, known: dict[str, TagResult], redelivered: bool = False) -> None:
    """Parse, classify and publish the jobs of these messages, and the results of those that want one.

    Only when Redis `redelivered` them are their jobs' deliveries counted: a first delivery
    is implied, and costs no Redis call.
    """
    s = settings()
    started = time.time()
    if marker := os.environ.get(CRASH_MESSAGE_HOOK_ENV):
        if any(marker.encode() in (m.body.encode() if isinstance(m.body, str) else m.body) for m in messages):
            os._exit(71)
    t = time.perf_counter()
    jobs, early = _parse_all(pub, messages, worker, report)
    report.seconds["parse"] += time.perf_counter() - t
    if redelivered:  # deliveries of each job, and whether it has its final result already
        t = time.perf_counter()
        counts = pub.count_attempts([j.job_id for j in jobs])
        report.seconds["attempts"] += time.perf_counter() - t
    else:  # a first delivery: nothing to count, and the common path pays no round trip for it
        counts = [(1, False)] * len(jobs)
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

    stored = _publish(pub, early, report, known)
    newly_failed = {r.job_id for r, new in zip(early, stored) if new}
    for job in dead:  # only with its first final result: a job delivered again lands there once
        if job.job_id in newly_failed:
            pub.dead_letter(job, f"no result after {attempts[job.job_id] - 1} deliveries", attempts[job.job_id] - 1)
            report.dead_lettered += 1
    # At most max_batch_size jobs per forward pass, however many one message brought: a pool
    # process's memory does not grow with the jobs in a message. The messages' results go in the
    # same call as their jobs' last ones (the common path: no suspects).
    chunks = [fresh[start : start + s.max_batch_size] for start in range(0, len(fresh), s.max_batch_size)] or [[]]
    for i, chunk in enumerate(chunks):
        tags = classify(clf, chunk, attempts, limits(), clf.review_threshold, s.colours, report, worker,
                        fetcher()) if chunk else []
        _publish(pub, tags, report, known, messages if i == len(chunks) - 1 and not suspects else ())
    if not suspects:
        return
    for job in isolation_order(suspects, attempts):
        report.isolated += 1
        _publish(pub, classify(clf, [job], attempts, limits(), clf.review_threshold, s.colours, report, worker,
                               fetcher()), report, known)
    _publish(pub, [], report, known, messages)


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


def _parse_all(pub: Publisher, messages: list[Message], worker: str | None,
               report: BatchReport) -> tuple[list[Job], list[TagResult]]:
    """Jobs of all messages (first copy of each job id) and failed results for the jobs that will not run.

    A body that cannot be read is dead-lettered with its raw bytes; the job ids it names
    get a final `invalid_message` result. The jobs of a revoked or expired message fail
    with that code, unrun.
    """
    jobs: list[Job] = []
    invalid: list[TagResult] = []
    for m in messages:
        try:
            ok, bad, m.job_ids = parse_message(m.body, worker, m.id, settings().max_jobs_per_message)
        except DecodeError as exc:
            report.invalid_messages += 1
            logger.error("dead-lettered a malformed message: %s", exc)
            pub.dead_letter_message(m.body, str(exc), 1)
            now = time.time()
            m.job_ids, m.unreadable = job_ids_in(m.body), str(exc)
            invalid += [failure(j, "", ErrorCode.INVALID_MESSAGE, f"its message could not be read: {exc}", now, 1,
                                worker) for j in m.job_ids]
            continue
        invalid += bad
        if m.skip:
            now = time.time()
            invalid += [failure(j.job_id, j.product_id, ErrorCode(m.skip), f"not run: its message was {m.skip}",
                                now, 1, worker, 1, j.enqueued_at, j.metadata) for j in ok]
            continue
        jobs += ok
    unique = list({j.job_id: j for j in reversed(jobs)}.values())[::-1]
    report.duplicates += len(jobs) - len(unique)
    return unique, invalid


def describe_model(ctx: dict[str, Any]) -> dict[str, Any]:
    """Load (or swap to) the context's checkpoint in this process and describe it."""
    s = settings()
    return inference.get(ctx["checkpoint"], ctx["generation"], s).info()


def warm_up() -> None:
    """Load the configured model at process start, so the first batch does not wait for it."""
    s = settings()
    inference.get(str(s.checkpoint), 0, s)
    if s.colours:
        colour.warm_up()  # the colour lookup tables, before the first job rather than in it
    # What is loaded now (about 370,000 objects: torch, numpy, Pillow, pydantic, the model) lives as
    # long as the process. Frozen, the cyclic collector stops walking it at every full collection;
    # objects are still freed by reference counting (a model replaced by a reload included).
    # Measured in process: 5-7% of a pool process's CPU per 28x28 image.
    gc.collect()
    gc.freeze()


def _publish(pub: Publisher, results: list[TagResult], report: BatchReport, known: dict[str, TagResult],
             messages: list[Message] = ()) -> list[bool]:
    """Publish these results and, in the same call, the results of those `messages` that want one."""
    for r in results:
        known.setdefault(r.job_id, r)
    replies = [m for m in messages if m.reply]
    if not results and not replies:
        return []
    t = time.perf_counter()
    stored = pub.publish(results, _message_results(pub, replies, known))
    report.seconds["publish"] += time.perf_counter() - t
    published = time.time()
    for r, new in zip(results, stored):
        if not new:
            report.duplicates += 1
            continue
        if r.status is Status.TAGGED:
            report.tagged += 1
        else:
            report.failed += 1
            code = r.error_code.value if r.error_code else "none"
            report.errors[code] = report.errors.get(code, 0) + 1
        latency = max(0.0, published - r.timings.enqueued_at)
        report.latency_s += latency
        report.latency_buckets[bucket(latency)] += 1
    return stored


def _message_results(pub: Publisher, replies: list[Message], known: dict[str, TagResult]) -> list[tuple[str, str, str]]:
    """(task id, Celery state, value) for each standard sender's message: its result under its task id."""
    missing = [j for m in replies for j in m.job_ids if j not in known]
    if missing:  # jobs that got their result in an earlier delivery (rare: a redelivered message)
        known.update(pub.stored_results(missing))
    out = []
    for m in replies:
        if m.job_ids == [m.id]:  # its one job's result is stored under the task id already
            continue
        out.append((m.id, *message_value([known[j] for j in m.job_ids if j in known], m.skip, m.unreadable)))
    return out
