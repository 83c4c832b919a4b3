"""Worker-side dynamic batching, in the worker's consumer (main) process.

Celery hands every task message to a "strategy". Ours does not run the message; it
adds it to a `BatchQueue` and, when a batch is ready and a pool process is free,
sends the batch's raw message bodies to that process in one call
(`worker.pool.run_batch`). Messages are acknowledged after their batch's results
are published (late ack); if the process dies or the batch raises, they are rejected
with requeue, so nothing is lost. The main process never decodes job bodies or
images, and never imports torch.

Why not `celery-batches`: it counts messages (not jobs), so bulk messages make
batches of thousands of images; it flushes on a fixed timer rather than on the
oldest job's wait; and when a pool process dies mid-batch it neither acks nor
requeues the batch's messages. See docs/service.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from time import monotonic
from typing import Any, Callable

from celery.worker import state as worker_state
from redis.exceptions import OutOfMemoryError

from wire.envelope import JOBS_HEADER, count_jobs
from wire.messages import JOB_ID_PATTERN
from worker.consumer import events
from worker.consumer.batch_queue import BatchQueue, Pending
from worker.consumer.stats import BatchingStats
from worker.consumer.transport import FULL_RETRY_S, QUARANTINED
from worker.pool import describe_model, run_batch
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

_batchers: dict[str, "Batcher"] = {}


def current() -> "Batcher | None":
    """This worker's batcher (the consumer process has one per batching task)."""
    return next(iter(_batchers.values()), None)


class InflightBatch:
    """A batch running in a pool process, as `inspect active` shows it."""

    def __init__(self, name: str, hostname: str, items: list[Pending[Any]]) -> None:
        self.id = uuid.uuid4().hex
        self.name = name
        self.hostname = hostname
        self.items = items
        self.jobs = sum(p.jobs for p in items)
        self.time_start = time.time()
        self.started = monotonic()
        self.worker_pid: int | None = None
        self.task_ids: list[str] = []
        self.before_restart = False  # in flight when the consumer lost Redis and restarted
        self.abandoned = False  # given up for lost after that restart: see Batcher.abandon_stuck

    def info(self, safe: bool = False) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.name, "hostname": self.hostname,
                "args": [], "kwargs": {}, "jobs": self.jobs, "messages": len(self.items),
                "time_start": self.time_start, "acknowledged": False, "worker_pid": self.worker_pid,
                "delivery_info": {}}


@dataclass(eq=False, slots=True, weakref_slot=True)  # one per message: cheap to make; weakly held by Celery
class Buffered:
    """A message waiting in the batcher, as `inspect reserved` lists it."""

    message: Any
    ack: Callable[..., Any]
    reject: Callable[..., Any]
    jobs: int
    hostname: str
    time_received: float = field(default_factory=time.time)

    def info(self, safe: bool = False) -> dict[str, Any]:
        h = self.message.headers if isinstance(self.message.headers, dict) else {}
        return {"id": h.get("id"), "name": h.get("task"), "type": h.get("task"), "args": h.get("argsrepr"),
                "kwargs": h.get("kwargsrepr"), "jobs": self.jobs, "hostname": self.hostname, "time_start": None,
                "time_received": self.time_received, "acknowledged": False, "worker_pid": None,
                "delivery_info": self.message.delivery_info if isinstance(self.message.delivery_info, dict) else {}}


def message_meta(message: Any, now: float) -> dict[str, Any]:
    """What the pool process needs to know of a message besides its body (worker.pool.parse.Message):
    its id; whether Redis has delivered it before (kombu marks a restored message), for
    message-level attempts; whether its sender wants its result under its task id (it did not
    set ignore_result, as our client does); and whether it must not run (revoked, expired)."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    task_id = headers.get("id")
    info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
    meta: dict[str, Any] = {"id": task_id, "redelivered": bool(headers.get("redelivered") or info.get("redelivered"))}
    if not (isinstance(task_id, str) and re.fullmatch(JOB_ID_PATTERN, task_id)):  # a key name: keep it boring
        meta["id"] = hashlib.sha256(repr((task_id, message.delivery_tag)).encode()).hexdigest()[:32]
    elif headers.get("ignore_result") is not True:
        meta["reply"] = True
    if worker_state.revoked and isinstance(task_id, str) and task_id in worker_state.revoked:
        meta["skip"] = "revoked"
    elif headers.get("expires") is not None and expired(headers["expires"], now):
        meta["skip"] = "expired"
    return meta


def expired(expires: Any, now: float) -> bool:
    """Whether a message's `expires` header (ISO 8601, as Celery sends it; naive means UTC) has passed."""
    try:
        when = datetime.fromisoformat(expires)
    except (TypeError, ValueError):
        return False
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp() <= now


INLINE_BATCH_BYTES = 32 * 1024  # well under a pipe's 64 KiB buffer
BATCH_KEY_PREFIX = "tagger:batch:"


class Batcher:
    def __init__(self, task: Any, app: Any, consumer: Any, settings: WorkerSettings) -> None:
        self.task_name = task.name
        self.consumer = consumer
        self.pool = consumer.pool
        self.timer = consumer.timer
        self.hostname = consumer.hostname
        self.errors = consumer.connection_errors
        self.settings = settings
        self.queue: BatchQueue[Buffered] = BatchQueue(
            settings.max_batch_size, settings.max_batch_wait_ms / 1000.0)
        self.concurrency = max(1, int(getattr(self.pool, "limit", 1) or 1))
        self.stats = BatchingStats()
        self.inflight: dict[str, InflightBatch] = {}
        self.checkpoint = str(settings.checkpoint)
        self.generation = 0
        self.model: dict[str, Any] = {}
        self.reload_error: str | None = None
        self.closing = False
        self._tref: Any = None
        self._tref_at: float | None = None
        self._lease_tref: Any = None
        self._restarted_at: float | None = None  # the last consumer restart with batches in flight
        self._jobs_per_message = 1.0
        self._full_until = 0.0  # monotonic time before which no batch is sent (Redis refused its key)
        self.redis = settings.redis_client()  # for large batches' bodies (see _payload)

    # --- messages in ----------------------------------------------------------------------

    def on_message(self, message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **_: Any) -> None:
        """Buffer a task message for batching; refuse (to the dead letters) what cannot run.

        Nothing a sender puts in a message may raise here: this runs in the event loop,
        where an exception stops the node (and, the message still queued, every replacement).
        """
        try:
            refusal = self._refusal(message)
            jobs = 0 if refusal else count_jobs(message.headers, message.body, JOBS_HEADER,
                                                self.settings.max_jobs_per_message)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.exception("could not take a message on %s", self.task_name)
            refusal = f"the worker could not take it: {type(exc).__name__}: {exc}"
        if refusal:
            logger.error("rejected a message on %s: %s", self.task_name, refusal)
            self.stats.rejected_messages += 1
            reasons = getattr(message.channel, "reject_reasons", None)
            if isinstance(reasons, dict):  # worker.consumer.transport dead-letters it with this reason
                reasons[message.delivery_tag] = refusal
            reject(logger, self.errors, False)
            return
        buffered = Buffered(message, ack, reject, jobs, self.hostname)
        worker_state.reserved_requests.add(buffered)  # `inspect reserved` lists it until its batch starts
        if (d := events.dispatcher(self.consumer)) is not None:
            events.received(d, message, jobs)
        self.queue.put(buffered, jobs, monotonic())
        self._adapt_prefetch(jobs)
        self.schedule()

    def _refusal(self, message: Any) -> str:
        """Why this message cannot run ("" if it can), judged without decoding its body."""
        if message.content_type != "application/json":
            # JSON only: a pickled (or otherwise typed) message is never decoded.
            return f"content type {message.content_type!r}: only application/json is accepted"
        if not isinstance(message.body, (bytes, str)):  # an envelope's body may be any JSON value
            return f"a body of type {type(message.body).__name__}: a message body is JSON text"
        size = len(message.body)
        if size > self.settings.max_message_bytes:
            return f"message of {size:,} bytes: the limit is {self.settings.max_message_bytes:,}"
        return ""

    def _adapt_prefetch(self, jobs: int) -> None:
        """Hold about a batch per process plus one filling, counted in jobs, whatever the message size.

        A fixed prefetch counted in messages would let one replica hoard tens of
        thousands of bulk jobs while others idle.
        """
        self._jobs_per_message = 0.8 * self._jobs_per_message + 0.2 * jobs
        qos = getattr(self.consumer, "qos", None)
        if qos is None:
            return
        target_jobs = self.settings.prefetch_messages(self.concurrency)
        want = max(self.concurrency + 1, round(target_jobs / self._jobs_per_message))
        if not qos.value or abs(qos.value - want) > 0.2 * want:
            qos.value = want  # the consumer loop applies it (qos.update) on its next turn

    # --- batches out ----------------------------------------------------------------------

    def schedule(self) -> None:
        """Dispatch every ready batch while a pool process is free; otherwise arm the timer."""
        if self.closing:
            return
        now = monotonic()
        while len(self.inflight) < self.concurrency and now >= self._full_until and self.queue.ready(now):
            self._dispatch(self.queue.take())
        deadline = self.queue.deadline()
        if deadline is not None:
            deadline = max(deadline, self._full_until)
        if deadline is not None and len(self.inflight) < self.concurrency:
            if self._tref is None or (self._tref_at is not None and deadline < self._tref_at):
                if self._tref is not None:
                    self._tref.cancel()
                self._tref = self.timer.call_at(deadline, self._on_timer, priority=5)
                self._tref_at = deadline

    def _on_timer(self) -> None:
        self._tref = self._tref_at = None
        self.schedule()

    def _ctx(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "generation": self.generation, "hostname": self.hostname}

    def _dispatch(self, items: list[Pending[Any]]) -> None:
        batch = InflightBatch(self.task_name, self.hostname, items)
        bodies = [p.item.message.body for p in items]
        try:
            payload = self._payload(batch.id, bodies)
        except OutOfMemoryError:  # Redis is full: the batch waits here, whole, and is sent once there is room
            self.queue.put_back(items)
            if monotonic() > self._full_until + FULL_RETRY_S:  # once a spell, not at every try
                logger.warning("Redis is full: a batch of %d jobs waits for room to be sent", batch.jobs)
            self._full_until = monotonic() + FULL_RETRY_S
            return
        except self.errors as exc:
            self._start(batch)
            return self._on_error(batch, exc)
        self._start(batch)
        now = time.time()
        payload["messages"] = [message_meta(p.item.message, now) for p in items]
        batch.task_ids = [m["id"] for m in payload["messages"] if "skip" not in m]  # revoked: never started
        ctx = self._ctx()
        if events.dispatcher(self.consumer) is not None:
            ctx["outcomes"] = True  # each message's outcome, for its task event
        self.pool.apply_async(run_batch, args=(payload, ctx),
                              callback=partial(self._on_done, batch),
                              error_callback=partial(self._on_error, batch),
                              accept_callback=partial(self._on_accepted, batch))

    def _start(self, batch: InflightBatch) -> None:
        self.inflight[batch.id] = batch
        worker_state.task_accepted(batch)  # visible in `inspect active` and `inspect stats`
        for p in batch.items:  # no longer buffered: `inspect reserved` stops listing them
            worker_state.reserved_requests.discard(p.item)

    def _payload(self, batch_id: str, bodies: list[bytes]) -> dict[str, Any]:
        """A small batch travels in the call itself; a large one waits in Redis for its process.

        Celery's prefork pool writes a call into the process's pipe piece by piece; a warm
        shutdown in the middle of a large one left that process waiting forever for the rest
        (seen with 300 KB batches in the SIGTERM fault test). A key fits in one write.
        """
        if sum(len(b) for b in bodies) <= INLINE_BATCH_BYTES:
            return {"bodies": bodies}
        key = BATCH_KEY_PREFIX + batch_id
        with self.redis.pipeline(transaction=True) as pipe:  # never seen without its TTL
            pipe.rpush(key, *bodies).expire(key, self.settings.visibility_timeout_s)
            pipe.execute()
        return {"key": key}

    def _on_accepted(self, batch: InflightBatch, pid: int, *_: Any) -> None:
        batch.worker_pid = pid
        if (d := events.dispatcher(self.consumer)) is not None:
            events.started(d, batch.task_ids)

    def _finish(self, batch: InflightBatch) -> None:
        self.inflight.pop(batch.id, None)
        worker_state.task_ready(batch, successful=True)

    def _on_done(self, batch: InflightBatch, report: dict[str, Any]) -> None:
        # The bookkeeping runs whatever the acknowledgement does: a batch left in `inflight`
        # would hold a pool slot and renew its messages' leases forever, and nothing would
        # ever run them again. Unacknowledged, they come back after the visibility timeout
        # and publish nothing twice.
        try:
            if batch.abandoned:  # its messages went back to Redis, maybe to another batch: not ours to ack
                logger.warning("a batch given up for lost after a reconnect reported back after all")
            else:
                self._ack(batch.items)
        except Exception:  # noqa: BLE001 - e.g. a channel closed by a lost connection
            logger.exception("could not acknowledge a batch of %d messages; Redis will redeliver them",
                             len(batch.items))
        finally:
            self._finish(batch)
            runtime = monotonic() - batch.started
            self.stats.add(report, runtime)
            self.model = report.get("model") or self.model
            if "outcomes" in report and (d := events.dispatcher(self.consumer)) is not None:
                events.finished(d, report["outcomes"], runtime)
            self.schedule()

    def _ack(self, items: list[Pending[Any]]) -> None:
        """Acknowledge a batch's messages: one round trip per channel where the transport allows."""
        by_channel: dict[int, list[Pending[Buffered]]] = {}
        for p in items:
            by_channel.setdefault(id(p.item.message.channel), []).append(p)
        for group in by_channel.values():
            qos = getattr(group[0].item.message.channel, "qos", None)
            if hasattr(qos, "ack_many"):
                try:
                    qos.ack_many([p.item.message.delivery_tag for p in group])
                    for p in group:
                        p.item.message._state = "ACK"
                    continue
                except self.errors as exc:  # Redis redelivers them; their results are published once
                    logger.error("could not acknowledge %d messages: %s", len(group), exc)
                    continue
            for p in group:
                p.item.ack(logger, self.errors)

    def _on_error(self, batch: InflightBatch, exc_info: Any) -> None:
        exc = getattr(exc_info, "exception", exc_info)
        logger.error("batch of %d jobs lost (%s: %s); requeueing its %d messages",
                     batch.jobs, type(exc).__name__, exc, len(batch.items))
        try:
            if batch.abandoned:  # given up after a reconnect: its messages are back in Redis already
                return
            for p in batch.items:
                p.item.reject(logger, self.errors, True)
        except Exception:  # noqa: BLE001 - as in _on_done: the slot is freed whatever happens
            logger.exception("could not requeue a batch of %d messages; Redis will redeliver them", len(batch.items))
        finally:
            self._finish(batch)
            self.stats.batches_lost += 1
            self.schedule()

    # --- operator commands ------------------------------------------------------------------

    def probe(self, checkpoint: str | None = None) -> None:
        """Have a pool process load `checkpoint` (default: current) and report it.

        With a new checkpoint this is a reload: it becomes the fleet's model only once a
        process has loaded it; every later batch carries it, and each process swaps before
        running its next batch.
        """
        generation = self.generation + 1 if checkpoint else self.generation
        ctx = {"checkpoint": checkpoint or self.checkpoint, "generation": generation, "hostname": self.hostname}

        def loaded(info: dict[str, Any]) -> None:
            if checkpoint:
                self.checkpoint, self.generation, self.reload_error = checkpoint, generation, None
                self.stats.reloads += 1
                logger.info("model reloaded: %s %s", info.get("arch"), info.get("model_version"))
            self.model = info

        def failed(exc_info: Any) -> None:
            exc = getattr(exc_info, "exception", exc_info)
            self.reload_error = f"{ctx['checkpoint']}: {type(exc).__name__}: {exc}"
            self.stats.reload_errors += 1
            logger.error("model load failed: %s", self.reload_error)

        self.pool.apply_async(describe_model, args=(ctx,), callback=loaded, error_callback=failed)

    def rebind(self, consumer: Any) -> None:
        """The consumer restarted (e.g. the connection to Redis was lost and is back).

        Buffered messages are kept and still run: a message that left Redis just as the
        connection dropped may be nowhere else. If Redis also redelivers it, the result
        is published once all the same.
        """
        for tref in (self._tref, self._lease_tref):
            if tref is not None:
                tref.cancel()
        self._tref = self._tref_at = self._lease_tref = None
        self.consumer, self.pool, self.timer = consumer, consumer.pool, consumer.timer
        self.errors = consumer.connection_errors
        self.closing = False
        if self.inflight:
            for batch in self.inflight.values():
                batch.before_restart = True
            self._restarted_at = monotonic()
        self.start_leases()
        self.schedule()

    def abandon_stuck(self) -> None:
        """Give up on batches in flight across a reconnect that have not reported back within a
        visibility timeout of it.

        A lost connection makes Celery reset its event loop, and a pool call whose writing or
        result was in the loop's hands can be dropped with it: its callbacks never fire. Such a
        batch would hold its pool slot and have its messages' leases renewed forever, and with
        both slots held the node goes quiet with the messages still "unacknowledged" in Redis
        (seen about once in 4-8 Redis restarts of test_faults on a loaded machine). Given up, its
        slot is free and its messages are no longer renewed: Redis restores them after the
        visibility timeout, and another batch tags them (a result is stored once). A batch that
        was only slow and reports back later is not acknowledged.
        """
        if self._restarted_at is None or monotonic() - self._restarted_at < self.settings.visibility_timeout_s:
            return
        self._restarted_at = None
        stuck = [b for b in self.inflight.values() if b.before_restart]
        for batch in stuck:
            batch.abandoned = True
            self.inflight.pop(batch.id, None)
            worker_state.task_ready(batch, successful=False)
            self.stats.batches_lost += 1
            logger.error("a batch of %d jobs dispatched before the reconnect has not reported back in %.0f s: "
                         "given up, its %d messages return through Redis", batch.jobs,
                         monotonic() - batch.started, len(batch.items))
        if stuck:
            self.schedule()

    # --- leases -----------------------------------------------------------------------------

    def start_leases(self) -> None:
        """Renew the visibility of every held message a few times per visibility timeout."""
        if self._lease_tref is None:
            interval = max(0.5, self.settings.visibility_timeout_s / 4)
            self._lease_tref = self.timer.call_repeatedly(interval, self.renew_leases, priority=5)

    def renew_leases(self) -> None:
        """A batch slower than the visibility timeout keeps its messages; so do the buffered ones.

        Without this, Redis gave a long batch's messages to another worker while the first
        still ran them, and counted that as a failed attempt (issue 11: valid images were
        dead-lettered). Now only a worker that is really gone loses its messages.
        """
        self.abandon_stuck()
        held = [p.item.message for p in self.queue] + [p.item.message for b in self.inflight.values() for p in b.items]
        by_qos: dict[int, tuple[Any, list[str]]] = {}
        for message in held:
            qos = getattr(message.channel, "qos", None)
            if hasattr(qos, "renew"):
                by_qos.setdefault(id(qos), (qos, []))[1].append(message.delivery_tag)
        for qos, tags in by_qos.values():
            try:
                qos.renew(tags)
            except self.errors as exc:  # Redis away: the next renewal (or the reconnect) catches up
                logger.warning("could not renew the visibility of %d messages: %s", len(tags), exc)

    def summary(self) -> dict[str, Any]:
        return {**self.stats.summary(), "quarantined": dict(QUARANTINED), "buffered_jobs": self.queue.jobs, "buffered_messages": len(self.queue),
                "inflight_batches": len(self.inflight), "inflight_jobs": sum(b.jobs for b in self.inflight.values()),
                "max_batch_size_setting": self.settings.max_batch_size,
                "max_batch_wait_ms": self.settings.max_batch_wait_ms,
                "pool_processes": self.concurrency,
                "prefetch_messages": getattr(getattr(self.consumer, "qos", None), "value", None)}


def batching_strategy(task: Any, app: Any, consumer: Any, **_: Any) -> Callable[..., None]:
    """Celery strategy factory (Task.Strategy): called at each consumer (re)start."""
    batcher = _batchers.get(task.name)
    if batcher is None:
        batcher = _batchers[task.name] = Batcher(task, app, consumer, task.settings)
        batcher.start_leases()
    else:
        batcher.rebind(consumer)
    return batcher.on_message
