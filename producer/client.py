"""The client backends use: submit product images, collect their tags.

    client = TaggerClient()                       # REDIS_URL and TAGGER_* from the environment
    handle = client.submit(Path("shirt.jpg"), product_id="sku-1")
    print(handle.get(timeout=10).label)
    handles = client.submit_many([(png_bytes, "sku-2"), (jpeg_bytes, "sku-3")])
    results = client.wait([h.job_id for h in handles], timeout=60)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

import redis

from producer.errors import QueueFull, ResultTimeout
from producer.settings import ClientSettings
from wire.connection import connect
from wire.dead_letters import DeadLetter
from wire.envelope import task_envelope
from wire.errors import DecodeError
from wire.keys import attempts_key, result_key
from wire.messages import Job, Metadata, TagResult
from wire.queue_depth import QueueDepth, queue_depth

ImageInput = Union[bytes, str, Path]
PIPELINE_JOBS = 1_024  # jobs per Redis round trip in submit_many: workers start while the rest is built
MGET_KEYS = 1_000


def read_image(image: ImageInput, max_bytes: int) -> bytes:
    """The image's bytes; refuses what the worker would refuse for size, before sending it."""
    if isinstance(image, bytes):
        if len(image) > max_bytes:
            raise ValueError(f"image of {len(image):,} bytes is over the {max_bytes:,}-byte limit")
        return image
    path = Path(image)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path}: {size:,} bytes is over the {max_bytes:,}-byte image limit")
    return path.read_bytes()


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
        """Block until the job's final result (a tag or an error) is in the result backend."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        try:
            value = self.async_result.get(timeout=timeout, propagate=False)
        except CeleryTimeout:
            raise ResultTimeout(f"no result for job {self.job_id} after {timeout} s", [self.job_id]) from None
        if isinstance(value, dict):
            return TagResult.parse(value)
        # a failed job: Celery made its exception of the stored result; the TagResult is in the same key
        return self.client.fetch([self.job_id])[self.job_id]

    def ready(self) -> bool:
        return bool(self.client.redis.exists(result_key(self.job_id)))


class TaggerClient:
    def __init__(self, settings: ClientSettings | None = None, **overrides: Any) -> None:
        base = settings or ClientSettings()
        self.settings = base.model_copy(update=overrides) if overrides else base
        self.redis = connect(self.settings.redis_url)
        self._celery: Any = None

    @property
    def celery(self) -> Any:
        """A Celery app bound to the result backend, for AsyncResult.get (created on first use)."""
        if self._celery is None:
            from celery import Celery

            self._celery = Celery("tagger-client", broker=self.settings.redis_url, backend=self.settings.redis_url)
            self._celery.conf.update(result_serializer="json", accept_content=["json"], result_accept_content=["json"])
        return self._celery

    # --- submitting -------------------------------------------------------------------------

    def job(self, image: ImageInput, product_id: str | None = None, job_id: str | None = None,
            metadata: Metadata | None = None) -> Job:
        """Build a Job; the product id defaults to the file name for paths."""
        if product_id is None:
            if isinstance(image, bytes):
                raise ValueError("product_id is required when submitting bytes")
            product_id = Path(image).name
        return Job.from_bytes(read_image(image, self.settings.max_image_bytes), product_id, job_id, metadata)

    def submit(self, image: ImageInput, product_id: str | None = None, job_id: str | None = None,
               metadata: Metadata | None = None) -> JobHandle:
        """One image, one message: the real-time path."""
        return self.submit_jobs([self.job(image, product_id, job_id, metadata)], chunk_size=1)[0]

    def submit_many(self, items: Iterable[Job | tuple[ImageInput, str]], chunk_size: int | None = None) -> list[JobHandle]:
        """Many images: `chunk_size` jobs per message, messages pushed in pipelines."""
        jobs = [it if isinstance(it, Job) else self.job(it[0], it[1]) for it in items]
        return self.submit_jobs(jobs, chunk_size)

    def submit_jobs(self, jobs: list[Job], chunk_size: int | None = None) -> list[JobHandle]:
        """Send jobs, `chunk_size` per message, about PIPELINE_JOBS jobs per round trip.

        Envelopes are built one pipeline at a time, so memory stays flat for large submissions
        and the first messages reach the workers while later ones are still being built.
        """
        size = chunk_size or self.settings.chunk_size
        s = self.settings
        per_pipeline = max(size, PIPELINE_JOBS // size * size)
        for start in range(0, len(jobs), per_pipeline):
            self._wait_for_room()
            pipe = self.redis.pipeline(transaction=False)
            group = jobs[start:start + per_pipeline]
            for i in range(0, len(group), size):
                pipe.lpush(s.queue, task_envelope(s.task_name, s.queue,
                                                  [j.model_dump(mode="json") for j in group[i:i + size]]))
            pipe.execute()
        return [JobHandle(j.job_id, j.product_id, self) for j in jobs]

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
                    found[job_id] = TagResult.parse(_meta_result(raw))
        return found

    def wait(self, job_ids: Iterable[str], timeout: float = 60.0) -> dict[str, TagResult]:
        """Wait for many results at once (polls with MGET; cheaper than one subscription per job)."""
        pending = list(dict.fromkeys(job_ids))
        results: dict[str, TagResult] = {}
        deadline = time.monotonic() + timeout
        delay = 0.005
        while pending:
            results.update(self.fetch(pending))
            pending = [j for j in pending if j not in results]
            if not pending:
                break
            if time.monotonic() >= deadline:
                raise ResultTimeout(f"{len(pending)} of {len(pending) + len(results)} results missing after {timeout} s",
                                    pending)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        return results

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


def _meta_result(raw: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
        return meta["result"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"not a tagger result in the result backend: {exc}") from None
