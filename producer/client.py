"""The client backends use: submit product images, collect their tags.

    client = TaggerClient()                       # REDIS_URL and TAGGER_* from the environment
    handle = client.submit(Path("shirt.jpg"), product_id="sku-1")
    print(handle.get(timeout=10).label)
    handles = client.submit_many([(png_bytes, "sku-2"), ("https://cdn.example.com/p/3.jpg", "sku-3")])
    results = client.wait([h.job_id for h in handles], timeout=60)
    for batch in client.result_batches([h.job_id for h in handles]):  # or each as it comes
        ...

Waiting costs Redis per result delivered, not per poll: `wait` reads the results stream with
XREAD BLOCK from the entry that was last before it looked (one MGET first finds the results
that are already there), so a result published at any moment is seen exactly once.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

import redis

from producer.errors import QueueFull, RedisFull, ResultTimeout
from producer.settings import ClientSettings
from wire.connection import redis_is_full
from wire.dead_letters import DeadLetter
from wire.envelope import BODY_OVERHEAD, jobs_envelope
from wire.errors import DecodeError, ErrorCode, JobTooLarge
from wire.keys import attempts_key, result_key
from wire.messages import Job, Metadata, Status, TagResult, Timings
from wire.queue_depth import QueueDepth, queue_depth
from wire.urls import looks_like_url, parse_image_url

MIN_MAX_SIDE = 28  # shrinking below the model's input size would lose what it reads
ImageInput = Union[bytes, str, Path]  # a str naming a scheme (https://...) is an image URL
# Per Redis round trip in submit_jobs, whichever comes first: workers start while the rest is built.
PIPELINE_JOBS = 1_024
PIPELINE_BYTES = 8 * 1024 * 1024
MGET_KEYS = 1_000
MEMORY_CHECK_S = 1.0  # a client looks at Redis's memory use at least this often (and when near its limit)
STREAM_READ_COUNT = 1_000  # results stream entries per XREAD while waiting
IDLE_CHECK_S = 2.0  # a wait that hears nothing this long looks up its pending keys once (see wait)


def read_image(image: ImageInput, max_bytes: int) -> bytes:
    """The image's bytes; refuses what the worker would refuse for size, before sending it."""
    if isinstance(image, bytes):
        if len(image) > max_bytes:
            raise ValueError(f"image of {len(image):,} bytes is over the {max_bytes:,}-byte limit")
        return image
    # one open, one fstat, one read: a CLI run over 10,000 files pays this 10,000 times (4 us
    # against 14 us for Path.is_file, stat and read_bytes). O_NONBLOCK: a FIFO must not hang the open.
    fd = os.open(image, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{image}: not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{image}: {st.st_size:,} bytes is over the {max_bytes:,}-byte image limit")
        data = os.read(fd, st.st_size + 1)
        if len(data) > st.st_size:  # it grew since the fstat: the rest, up to a byte past the limit
            data += os.read(fd, max_bytes + 1 - len(data))  # a regular file reads short only at its end
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{image}: over the {max_bytes:,}-byte image limit")
    return data


@dataclass(frozen=True)
class JobHandle:
    """What submit returns: the job id, and a way to wait for its result."""

    job_id: str
    product_id: str
    client: "TaggerClient"

    @property
    def async_result(self) -> Any:
        """The Celery AsyncResult for this job (results are stored under the job id)."""
        return self.client.celery.AsyncResult(self.job_id)

    def get(self, timeout: float = 30.0) -> TagResult:
        """Block until the job's final result (a tag or an error) is there: `TaggerClient.wait` for one job."""
        return self.client.wait([self.job_id], timeout)[self.job_id]

    def ready(self) -> bool:
        return bool(self.client.redis.exists(result_key(self.job_id)))


class TaggerClient:
    def __init__(self, settings: ClientSettings | None = None, **overrides: Any) -> None:
        base = settings or ClientSettings()
        self.settings = base.model_copy(update=overrides) if overrides else base
        self.redis = self.settings.redis_client()
        self._celery: Any = None
        self._memory: tuple[int, int] | None = None  # Redis's used_memory (plus what we sent since) and maxmemory
        self._memory_at = 0.0

    @property
    def celery(self) -> Any:
        """A Celery app bound to the result backend, for AsyncResult.get (created on first use)."""
        if self._celery is None:
            from celery import Celery

            self._celery = Celery("tagger-client", broker=self.settings.redis_url, backend=self.settings.redis_url)
            self._celery.conf.update(result_serializer="json", accept_content=["json"], result_accept_content=["json"],
                                     **self.settings.celery_options())
        return self._celery

    # --- submitting -------------------------------------------------------------------------

    def job(self, image: ImageInput | None = None, product_id: str | None = None, job_id: str | None = None,
            metadata: Metadata | None = None, *, url: str | None = None, max_side: int | None = None) -> Job:
        """Build a Job from bytes, a file, or an http(s) URL (`url=`, or a str naming its scheme).

        The product id defaults to the file name (of the path, or of the URL's path). A URL that
        can never be fetched (another scheme, no host) is refused here, before anything is sent.
        `max_side`: shrink a larger image (bytes or file; a URL is fetched as it is) to this long
        side before sending (producer.shrink, needs Pillow; 512 keeps the tags): fewer bytes on the
        wire, in Redis and in the worker's decoder.
        """
        if max_side is not None and max_side < MIN_MAX_SIDE:
            raise ValueError(f"max_side={max_side}: at least {MIN_MAX_SIDE} pixels (the model sees 28x28)")
        if url is None and isinstance(image, str) and looks_like_url(image):
            image, url = None, image
        if (image is None) == (url is None):
            raise ValueError("give exactly one of an image (bytes or a path) and url=")
        if url is not None:
            parsed = parse_image_url(url)
            name = parsed.target.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or parsed.host
            return Job.from_url(url, product_id or name[:256], job_id, metadata)
        if product_id is None:
            if isinstance(image, bytes):
                raise ValueError("product_id is required when submitting bytes")
            product_id = Path(image).name  # type: ignore[arg-type]
        data = read_image(image, self.settings.max_image_bytes)  # type: ignore[arg-type]
        if max_side is not None:
            # optional: only this feature needs Pillow
            from producer.shrink import shrink

            data = shrink(data, max_side)
        return Job.from_bytes(data, product_id, job_id, metadata)

    def submit(self, image: ImageInput | None = None, product_id: str | None = None, job_id: str | None = None,
               metadata: Metadata | None = None, *, url: str | None = None, max_side: int | None = None) -> JobHandle:
        """One image (bytes, a path, or `url=`), one message: the real-time path."""
        job = self.job(image, product_id, job_id, metadata, url=url, max_side=max_side)
        return self.submit_jobs([job], chunk_size=1)[0]

    def submit_many(self, items: Iterable[Job | tuple[ImageInput, str]], chunk_size: int | None = None,
                    max_side: int | None = None) -> list[JobHandle]:
        """Many images (bytes, paths or URLs, with product ids): up to `chunk_size` jobs per message,
        messages pushed in pipelines. `max_side` as for `job`."""
        jobs = [it if isinstance(it, Job) else self.job(it[0], it[1], max_side=max_side) for it in items]
        return self.submit_jobs(jobs, chunk_size)

    def submit_jobs(self, jobs: list[Job], chunk_size: int | None = None) -> list[JobHandle]:
        """Send jobs, up to `chunk_size` per message, a few MB or PIPELINE_JOBS jobs per round trip.

        A message closes before its body would pass half the worker's `max_message_bytes` (so
        the worker never rejects it unread) and at `max_jobs_per_message`. Each job is serialized
        once, and every job is checked before anything is sent: one too large for any message
        raises JobTooLarge and sends nothing.
        Raises RedisFull when Redis is (nearly) full: each round trip is one transaction, enqueued
        whole or not at all, so the jobs it reports enqueued are the submission's first ones.
        """
        texts = [j.wire_json() for j in jobs]
        for job, text in zip(jobs, texts):
            self._check_fits(job, text)
        s = self.settings
        sent = 0  # jobs enqueued so far: what a RedisFull reports
        for pipeline in _pipelines(_messages(texts, min(chunk_size or s.chunk_size, s.max_jobs_per_message),
                                             self.max_body_bytes)):
            self._wait_for_room()
            envelopes = [jobs_envelope(s.task_name, s.queue, message) for message in pipeline]
            if why := self._no_room_for(sum(len(e) for e in envelopes)):
                raise redis_full(jobs, sent, why)
            # MULTI/EXEC: a full Redis refuses the whole round trip, so what was enqueued is a prefix
            pipe = self.redis.pipeline(transaction=True)
            for envelope in envelopes:
                pipe.lpush(s.queue, envelope)
            try:
                pipe.execute()
            except redis.exceptions.ResponseError as exc:
                if redis_is_full(exc):
                    raise redis_full(jobs, sent, "maxmemory reached: it refuses writes") from None
                raise
            sent += sum(len(message) for message in pipeline)
        return [JobHandle(j.job_id, j.product_id, self) for j in jobs]

    @property
    def max_body_bytes(self) -> int:
        """The largest message body this client sends: half of what the worker accepts."""
        return self.settings.max_message_bytes // 2

    def _check_fits(self, job: Job, text: str) -> None:
        size = len(text) + BODY_OVERHEAD
        if size > self.max_body_bytes:
            raise JobTooLarge(f"job {job.job_id} ({job.product_id}) is {size:,} bytes as a message; no message may "
                              f"pass {self.max_body_bytes:,} (half of max_message_bytes): nothing was sent")

    def queue_length(self) -> int:
        """Messages waiting in the queue (a bulk message holds up to chunk_size jobs)."""
        return int(self.redis.llen(self.settings.queue))

    def queue_depth(self) -> QueueDepth:
        """Messages and jobs waiting in the queue (jobs estimated from a sample in a deep queue)."""
        return queue_depth(self.redis, self.settings.queue, self.settings.max_jobs_per_message)

    def _wait_for_room(self) -> None:
        limit = self.settings.max_queue_length
        if not limit:
            return
        deadline = time.monotonic() + self.settings.full_wait_s
        delay = 0.05
        while (n := self.queue_length()) >= limit:
            if self.settings.when_full == "raise" or time.monotonic() >= deadline:
                raise QueueFull(f"queue {self.settings.queue!r} holds {n:,} messages; the limit is {limit:,}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _no_room_for(self, size: int) -> str:
        """Why `size` more bytes must not be queued now ("" if they may): Redis's memory use would pass
        `submit_memory_fraction` of its maxmemory.

        Submissions stop short of the limit: a Redis filled to the brim by producers refuses the
        workers' results too, and the queue that would free memory stops draining. Redis is asked
        (INFO) when the bytes sent since the last look could reach the threshold, or a second has passed.
        """
        s = self.settings
        if s.submit_memory_fraction >= 1:  # no look: only Redis's own refusal
            return ""
        if (self._memory is None or time.monotonic() - self._memory_at > MEMORY_CHECK_S
                or self._memory[0] + size > s.submit_memory_fraction * self._memory[1] > 0):
            try:
                info = self.redis.info("memory")
            except redis.exceptions.ResponseError:  # INFO disabled (some managed Redis): Redis's own refusal remains
                info = {}
            self._memory = (int(info.get("used_memory") or 0), int(info.get("maxmemory") or 0))
            self._memory_at = time.monotonic()
        used, limit = self._memory
        if limit and used + size > s.submit_memory_fraction * limit:
            return (f"{used / limit:.0%} of its maxmemory in use, {size:,} bytes more to queue; submissions stop "
                    f"at {s.submit_memory_fraction:.0%}, the rest is for the workers' results")
        self._memory = (used + size, limit)
        return ""

    # --- dead letters -----------------------------------------------------------------------

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """Jobs that exhausted their attempts, oldest first, with the reason."""
        entries = self.redis.xrange(self.settings.dead_letter_stream, count=count)
        return [DeadLetter.from_entry(eid, fields) for eid, fields in entries]

    def replay_dead_letters(self, entry_ids: Iterable[str] | None = None) -> list[JobHandle]:
        """Submit dead-lettered jobs again under their own job ids.

        Their `too_many_attempts` result and attempt count are deleted first, so the
        replay produces a new final result. Without ids, every dead letter is replayed.
        """
        wanted = set(entry_ids) if entry_ids is not None else None
        letters = [d for d in self.dead_letters(count=1_000_000)
                   if d.job is not None and (wanted is None or d.entry_id in wanted)]
        if not letters:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for d in letters:
            pipe.delete(result_key(d.job.job_id), attempts_key(d.job.job_id))  # type: ignore[union-attr]
        pipe.execute()
        handles = self.submit_jobs([d.job for d in letters if d.job is not None], chunk_size=1)
        self.redis.xdel(self.settings.dead_letter_stream, *[d.entry_id for d in letters])
        return handles

    # --- collecting -------------------------------------------------------------------------

    def get(self, job_id: str, timeout: float = 30.0) -> TagResult:
        return JobHandle(job_id, "", self).get(timeout)

    def fetch(self, job_ids: list[str]) -> dict[str, TagResult]:
        """The results already available, without waiting."""
        found: dict[str, TagResult] = {}
        for start in range(0, len(job_ids), MGET_KEYS):
            chunk = job_ids[start:start + MGET_KEYS]
            for job_id, raw in zip(chunk, self.redis.mget([result_key(j) for j in chunk])):
                if raw is not None:
                    found[job_id] = _result_of(job_id, raw)
        return found

    def wait(self, job_ids: Iterable[str], timeout: float = 60.0) -> dict[str, TagResult]:
        """Wait for many results at once; by job id. Raises ResultTimeout if some are missing after `timeout` s."""
        return {r.job_id: r for batch in self.result_batches(job_ids, timeout) for r in batch}

    def result_batches(self, job_ids: Iterable[str], timeout: float = 60.0) -> Iterator[list[TagResult]]:
        """The results of `job_ids` as they come: first those already there, then a list per read of
        the results stream, each job's once. Raises ResultTimeout if some are missing after `timeout` s.

        One MGET per 1,000 jobs for those already there, then the results stream: its last entry id is
        read before the MGET, so a result published at any moment is either found by the MGET or read
        from the stream after that id (XREAD BLOCK): Redis work grows with the results delivered, not
        with pending jobs x polls. After IDLE_CHECK_S without a new entry, the pending keys are looked
        up once more (a result the stream's retention trimmed away before it was read is still in the
        result backend).
        """
        pending = set(job_ids)
        total = len(pending)
        stream = self.settings.results_stream
        last = self._stream_last_id()
        found = self.fetch(list(pending))
        deadline = time.monotonic() + timeout
        while True:
            if found:
                pending -= found.keys()
                yield list(found.values())
            if not pending:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResultTimeout(f"{len(pending)} of {total} results missing after {timeout} s", sorted(pending))
            reply = self.redis.xread({stream: last}, count=STREAM_READ_COUNT,
                                     block=max(1, int(1000 * min(left, IDLE_CHECK_S))))
            if not reply:
                found = self.fetch(list(pending))
                continue
            found = {}
            for entry_id, fields in reply[0][1]:
                last = entry_id
                job_id = fields.get(b"job_id", b"").decode("utf-8", "replace")
                if job_id in pending and b"result" in fields and job_id not in found:
                    # an entry nobody's worker wrote (unreadable, or another job's result) is passed
                    # over: the job's own result is still found, in the stream or the backend
                    try:
                        result = TagResult.parse(fields[b"result"])
                    except DecodeError:
                        continue
                    if result.job_id == job_id:
                        found[job_id] = result

    def _stream_last_id(self) -> bytes | str:
        last = self.redis.xrevrange(self.settings.results_stream, count=1)
        return last[0][0] if last else "0-0"

    def results(self, follow: bool = False, from_start: bool = True, group: str | None = None,
                consumer: str | None = None, block_ms: int = 1000, count: int = 100,
                claim_idle_ms: int | None = None) -> Iterator[TagResult]:
        """Iterate the results stream.

        With `group`, read as member `consumer` of a consumer group: each entry goes to one
        member and is acknowledged when the caller asks for the next one (at-least-once).
        A member first gets back what it was given before but did not acknowledge; with
        `claim_idle_ms` it also takes over entries other members left idle that long.
        """
        stream = self.settings.results_stream
        if group:
            yield from self._read_group(stream, group, consumer or "client", follow, from_start, block_ms, count,
                                        claim_idle_ms)
            return
        last = "0" if from_start else "$"
        while True:
            reply = self.redis.xread({stream: last}, count=count, block=block_ms if follow else None)
            if not reply:
                if follow:
                    continue
                return
            for entry_id, fields in reply[0][1]:
                last = entry_id
                yield TagResult.parse(fields[b"result"])

    def _read_group(self, stream: str, group: str, consumer: str, follow: bool, from_start: bool,
                    block_ms: int, count: int, claim_idle_ms: int | None) -> Iterator[TagResult]:
        try:
            self.redis.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

        def entries(batch: list[tuple[bytes, dict[bytes, bytes]]]) -> Iterator[TagResult]:
            for entry_id, fields in batch:
                if fields:  # an entry trimmed away by retention comes back empty
                    yield TagResult.parse(fields[b"result"])
                self.redis.xack(stream, group, entry_id)

        while True:  # this member's unacknowledged entries first
            reply = self.redis.xreadgroup(group, consumer, {stream: "0"}, count=count)
            if not reply or not reply[0][1]:
                break
            yield from entries(reply[0][1])
        if claim_idle_ms is not None:
            start = "0-0"
            while True:
                start, claimed, *_ = self.redis.xautoclaim(stream, group, consumer, claim_idle_ms, start, count=count)
                yield from entries(claimed)
                if start in (b"0-0", "0-0"):
                    break
        while True:
            reply = self.redis.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms if follow else None)
            if not reply or not reply[0][1]:
                if follow:
                    continue
                return
            yield from entries(reply[0][1])

    def close(self) -> None:
        self.redis.close()
        if self._celery is not None:
            self._celery.close()

    def __enter__(self) -> "TaggerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redis_full(jobs: list[Job], accepted: int, why: str) -> RedisFull:
    ids = [j.job_id for j in jobs]
    return RedisFull(f"Redis is full ({why}): {accepted:,} of {len(jobs):,} jobs were enqueued (the first "
                     f"{accepted:,}); submit the other {len(jobs) - accepted:,} again once it has room",
                     ids[:accepted], ids[accepted:])


def _messages(texts: list[str], max_jobs: int, max_bytes: int) -> Iterator[list[str]]:
    """Jobs' JSON texts grouped into message bodies of at most `max_jobs` jobs and `max_bytes` bytes."""
    message: list[str] = []
    size = BODY_OVERHEAD
    for text in texts:
        if message and (len(message) >= max_jobs or size + 1 + len(text) > max_bytes):
            yield message
            message, size = [], BODY_OVERHEAD
        message.append(text)
        size += len(text) + 1
    if message:
        yield message


def _pipelines(messages: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    """Messages grouped per Redis round trip: about PIPELINE_JOBS jobs or PIPELINE_BYTES bytes."""
    group: list[list[str]] = []
    jobs = size = 0
    for message in messages:
        group.append(message)
        jobs += len(message)
        size += sum(len(t) for t in message)
        if jobs >= PIPELINE_JOBS or size >= PIPELINE_BYTES:
            yield group
            group, jobs, size = [], 0, 0
    if group:
        yield group


def _result_of(job_id: str, raw: bytes) -> TagResult:
    """A job's result from its value in the result backend.

    Job ids and Celery task ids share the backend's keys (so that `AsyncResult(job_id)` works). A
    value that is not a tagger result is therefore another task's, stored under the same id (the
    fuzz test found one: an unknown task's NotRegistered error): the job reads as failed with that
    said, instead of the whole fetch failing on it. Its own result can never be stored there."""
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    try:
        result: TagResult | None = TagResult.parse(meta["result"])  # type: ignore[index]
    except (DecodeError, KeyError, TypeError):
        result = None
    if result is not None and result.job_id == job_id:
        return result
    now = time.time()
    found = meta.get("result") if isinstance(meta, dict) else None
    what = (f"{found.get('exc_type')}: {found.get('exc_message')}" if isinstance(found, dict) and "exc_type" in found
            else f"job {result.job_id}'s tagger result" if result is not None
            else f"{len(raw):,} bytes that are not a tagger result")
    return TagResult(job_id=job_id, product_id="", status=Status.FAILED, error_code=ErrorCode.INVALID_JOB,
                     error=f"the result backend holds another task's result under this job id ({what[:200]}); "
                           f"job ids must be unique among the backend's task ids",
                     timings=Timings(enqueued_at=now, started_at=now, finished_at=now, batch_size=0))
