"""One way to open a Redis connection, for the client and the worker's own Redis calls."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def connect(url: str) -> redis.Redis:
    """A Redis client that reconnects with exponential backoff (about 10 s in all) instead of failing at once."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=10),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )
