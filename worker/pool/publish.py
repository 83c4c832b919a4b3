"""Results out of a pool process: Celery result backend + results stream, idempotent per job id.

One Lua script call per batch (one command, one round trip): for each job, the first
final result is stored under Celery's result key, published for `AsyncResult.get()`
subscribers and appended to the results stream; a later one (a job processed twice
after a redelivery, or submitted twice) changes nothing and is counted as a duplicate.
Attempt counting is one call per batch too. (All of a batch's keys in one script: a
single Redis, not Redis Cluster.)

A failed job's result has Celery's state FAILURE (REVOKED when it was revoked or expired)
and Celery's JSON exception fields (exc_type, exc_module, exc_message) next to the
TagResult fields, so Celery's tools read a failure and our client still reads a TagResult.
A message from a standard sender (it did not set ignore_result) also gets a result under
its task id, in the same script call as its jobs' results: the one job's result, or the
list of its jobs' results in order.

While Redis is full (maxmemory, noeviction) it refuses these writes; the process waits and
tries again, however long it takes, and its batch's messages stay unacknowledged meanwhile.
Each write here is refused before it changes anything (its first command is the one that
adds memory), so trying again never does it twice.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import redis
from redis.exceptions import ResponseError

from wire.connection import redis_is_full
from wire.dead_letters import job_fields, raw_fields
from wire.errors import NOT_RUN_CODES, ErrorCode
from wire.keys import attempts_key, message_attempts_key, result_key
from wire.messages import Job, Status, TagResult
from wire.settings import ServiceSettings

LUA = Path(__file__).with_name("lua")
FULL_RETRY_MAX_S = 5.0  # longest pause between two tries while Redis is full
logger = logging.getLogger(__name__)
T = TypeVar("T")


def until_accepted(write: Callable[[], T], what: str) -> T:
    """`write()`, tried again with backoff for as long as Redis refuses it for lack of memory."""
    delay, since = 0.1, None
    while True:
        try:
            result = write()
        except ResponseError as exc:
            if not redis_is_full(exc):
                raise
            if since is None:
                since = time.monotonic()
                logger.warning("Redis is full (maxmemory, noeviction): %s waits for room", what)
            time.sleep(delay)
            delay = min(2 * delay, FULL_RETRY_MAX_S)
            continue
        if since is not None:
            logger.warning("Redis had room again after %.0f s: %s done", time.monotonic() - since, what)
        return result


def backend_value(r: TagResult, payload: str) -> tuple[str, str]:
    """(Celery state, result JSON) of one job's result; `payload` is its TagResult JSON."""
    if r.status is Status.TAGGED:
        return "SUCCESS", payload
    code = r.error_code or ErrorCode.INTERNAL_ERROR
    if code in NOT_RUN_CODES:  # as stock Celery stores a revoked or expired task
        return "REVOKED", _exception("TaskRevokedError", "celery.exceptions", [code.value], payload)
    return "FAILURE", _exception("JobFailed", "wire.errors", [code.value, r.error or ""], payload)


def message_value(results: list[TagResult], skip: str = "", unreadable: str = "") -> tuple[str, str]:
    """(Celery state, result JSON) of a standard sender's message: its one job's result, or the list
    of its jobs' results (state SUCCESS when at least one job was tagged, or it held none).
    `unreadable`: why its body could not be read (then it fails, whatever job ids it named)."""
    if len(results) == 1 and not unreadable:
        return backend_value(results[0], results[0].model_dump_json())
    items = "[" + ",".join(r.model_dump_json() for r in results) + "]"
    if any(r.status is Status.TAGGED for r in results) or not (results or unreadable):
        return "SUCCESS", items
    if skip:
        return "REVOKED", _exception("TaskRevokedError", "celery.exceptions", [skip], '{"results":' + items + "}")
    codes = [r.error_code.value for r in results if r.error_code]
    code = codes[0] if codes else ErrorCode.INVALID_MESSAGE.value
    reason = unreadable or f"none of its {len(results)} jobs was tagged"
    return "FAILURE", _exception("JobFailed", "wire.errors", [code, reason], '{"results":' + items + "}")


def _exception(exc_type: str, module: str, message: list[str], fields: str) -> str:
    """Celery's JSON exception format, with `fields` (a JSON object) merged in."""
    head = f'{{"exc_type":"{exc_type}","exc_module":"{module}","exc_message":{json.dumps(message)}'
    return head + ("," + fields[1:] if len(fields) > 2 else "}")


def backend_meta(state: str, value: str, task_id: str, done: str) -> str:
    """Celery's result-backend layout, built around the value rather than re-encoding it."""
    return (f'{{"status":"{state}","result":{value},"traceback":null,"children":[],'
            f'"date_done":{done},"task_id":{json.dumps(task_id)}}}')


class Publisher:
    def __init__(self, settings: ServiceSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = client or settings.redis_client()
        self._count = self._script("count_attempts")
        self._publish = self._script("publish_once")
        self._redeliveries = self._script("count_redeliveries")
        self._take = self._script("take_batch")

    def _script(self, name: str) -> Any:
        return self.redis.register_script((LUA / f"{name}.lua").read_text())

    def take_batch(self, key: str) -> list[bytes]:
        """A large batch's message bodies, left in Redis by the consumer process."""
        bodies = self._take(keys=[key])
        if not bodies:  # expired or lost with Redis: raise, and the batch is requeued
            raise LookupError(f"batch {key} is gone from Redis")
        return list(bodies)

    def count_attempts(self, job_ids: list[str]) -> list[tuple[int, bool]]:
        """(deliveries so far including this one, whether a final result exists) per job of a
        redelivered message (its first delivery was not counted: it is added here).

        Redis keeps no delivery counter, so the worker keeps one per job id.
        """
        if not job_ids:
            return []
        keys = [attempts_key(j) for j in job_ids] + [result_key(j) for j in job_ids]
        replies = until_accepted(lambda: self._count(keys=keys, args=[self.settings.result_ttl_s]), "counting attempts")
        return [(1 + int(replies[i]), bool(replies[i + 1])) for i in range(0, len(replies), 2)]

    def jobs_seen(self, job_ids: list[str]) -> bool:
        """Whether any of these jobs was counted or has a result: its message was parsed before."""
        keys = [attempts_key(j) for j in job_ids] + [result_key(j) for j in job_ids]
        return bool(keys) and int(self.redis.exists(*keys)) > 0

    def count_redeliveries(self, message_ids: list[str]) -> list[int]:
        """Per message Redis delivered again (kombu marks them), how many times so far.

        Only redelivered messages are counted, so the common path costs nothing: a
        message's first delivery is implied.
        """
        if not message_ids:
            return []
        keys = [message_attempts_key(m) for m in message_ids]
        counts = until_accepted(lambda: self._redeliveries(keys=keys, args=[self.settings.result_ttl_s]),
                                "counting redeliveries")
        return [int(n) for n in counts]

    def publish(self, results: list[TagResult], messages: list[tuple[str, str, str]] = ()) -> list[bool]:
        """Store and stream each result once; per result, whether it was new (else a duplicate).

        `messages`: (task id, state, value) of standard senders' messages, stored in the same call.
        """
        if not results and not messages:
            return []
        s = self.settings
        done = json.dumps(datetime.now(timezone.utc).isoformat())
        args: list[str | int] = [s.result_ttl_s, s.stream_maxlen, len(results)]
        for r in results:
            payload = r.model_dump_json()
            args += [backend_meta(*backend_value(r, payload), r.job_id, done), r.job_id, r.status.value, payload]
        args += [backend_meta(state, value, task_id, done) for task_id, state, value in messages]
        keys = [result_key(r.job_id) for r in results] + [s.results_stream] + [result_key(m[0]) for m in messages]
        replies = until_accepted(lambda: self._publish(keys=keys, args=args), f"publishing {len(results)} results")
        return [bool(x) for x in replies]

    def stored_results(self, job_ids: list[str]) -> dict[str, TagResult]:
        """The final results these jobs already have in the result backend (published in an earlier delivery)."""
        found = {}
        raws = until_accepted(lambda: self.redis.mget([result_key(j) for j in job_ids]), "reading results") \
            if job_ids else []
        for job_id, raw in zip(job_ids, raws):
            if raw is not None:
                found[job_id] = TagResult.parse(json.loads(raw)["result"])
        return found

    def dead_letter_message(self, body: bytes | str, reason: str, attempts: int) -> None:
        """A message whose body cannot be read: its raw bytes (truncated), for an operator to look at."""
        self._dead_letter(raw_fields(body, reason, attempts, self.settings.queue))

    def dead_letter(self, job: Job, reason: str, attempts: int) -> None:
        """Keep the whole job (image included) so an operator can inspect and replay it."""
        self._dead_letter(job_fields(job, reason, attempts))

    def _dead_letter(self, fields: dict[str, Any]) -> None:
        s = self.settings
        until_accepted(lambda: self.redis.xadd(s.dead_letter_stream, fields, maxlen=s.dead_letter_maxlen,
                                               approximate=True), "a dead letter")
