"""One way to open a Redis connection, for the client and the worker's own Redis calls, and to tell
a full Redis from other errors."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from wire.sentinel import is_sentinel, primary
from wire.settings import DEFAULT_SENTINEL_MASTER


def connect(url: str, sentinel_master: str = DEFAULT_SENTINEL_MASTER, sentinel_password: str | None = None
            ) -> redis.Redis:
    """A Redis client that reconnects with exponential backoff (about 10 s in all) instead of failing at once.

    With a `sentinel://` URL (wire.sentinel) it is a client of the current primary: a failover
    that completes within those retries goes unnoticed.
    """
    options = dict(
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=10),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )
    if is_sentinel(url):
        return primary(url, sentinel_master, sentinel_password, **options)
    return redis.Redis.from_url(url, **options)


def redis_is_full(exc: BaseException) -> bool:
    """Whether Redis refused a write for lack of memory (maxmemory reached, policy noeviction).

    A plain command raises OutOfMemoryError; the same refusal inside a Lua script reaches
    redis-py as a plain ResponseError ("Error running script ... -OOM command not allowed").
    """
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or (
        isinstance(exc, redis.exceptions.ResponseError) and "OOM command not allowed" in str(exc))
