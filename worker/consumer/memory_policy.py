"""The broker's memory policy, checked each time the consumer connects (start, reconnect, failover).

Under `maxmemory` with any policy but `noeviction`, Redis makes room by deleting keys: the
queue list and kombu's unacked hash among them (`allkeys-*`), or results before anyone read
them (`volatile-*`, which take keys with a TTL). Nothing errors anywhere; jobs just never get a
result. So a worker refuses to start on such a Redis, with one line that says why, unless
TAGGER_ALLOW_EVICTION=1. Under `noeviction` a full Redis refuses writes instead: producers get
`RedisFull`, and workers wait for room (worker.consumer.transport, worker.pool.publish).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"
EXIT_EVICTING_REDIS = 78  # EX_CONFIG: a configuration error, not a crash


def eviction_problem(info: dict[str, Any]) -> str | None:
    """Why this Redis (its `INFO memory`) may lose jobs, in one line; None if it will not."""
    policy = info.get("maxmemory_policy")
    if policy is None or policy == SAFE_POLICY:
        return None
    limit = int(info.get("maxmemory") or 0)
    size = f"maxmemory {limit:,} bytes" if limit else "no maxmemory yet (CONFIG SET can add one at any time)"
    return (f"refusing to start: the broker's maxmemory-policy is {policy} ({size}), so Redis may evict queued jobs "
            f"or unread results; set maxmemory-policy {SAFE_POLICY} (see docs/operations.md), "
            "or TAGGER_ALLOW_EVICTION=1 to run anyway")


class MemoryPolicyCheck(bootsteps.StartStopStep):
    """A consumer bootstep: after the broker connection, before any message is taken."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c: Any) -> None:
        from worker.app import settings

        if settings.allow_eviction:
            return
        with c.connection.default_channel.conn_or_acquire() as client:
            problem = eviction_problem(client.info("memory"))
        if problem:
            logger.critical(problem)
            raise SystemExit(EXIT_EVICTING_REDIS)
