"""The keys audit: every key in Redis after a run is bounded.

Allowed: a key with a TTL; the task queue and its inflight list (queues that drain);
the results and dead-letter streams within their caps; and the few keys kombu keeps
whose size is bounded by the fleet, not by traffic: its binding tables (one member per
queue binding), the deadlines of expiring binding tables, and the unacknowledged
messages (at most the workers' prefetch; they drain on acknowledgement). Anything
else (an inflight list of a reply queue, a counter without expiry) is a leak.
"""

from __future__ import annotations

import redis

from wire.settings import ServiceSettings
from worker.consumer.transport import inflight_key

# kombu's own keys, bounded by the number of queues and workers (see the docstring)
KOMBU_BOUNDED = {"unacked": "hash", "unacked_index": "zset", "_kombu.binding_deadlines": "zset"}
KOMBU_BINDING_PREFIXES = ("_kombu.binding.", "_kombu.binding_permanent.")
STREAM_SLACK = 1.1  # streams are trimmed approximately (MAXLEN ~)


def unbounded_keys(client: redis.Redis, settings: ServiceSettings | None = None) -> list[str]:
    """Keys that are none of the allowed kinds, each with its type and size: [] when all is bounded."""
    s = settings or ServiceSettings()
    streams = {s.results_stream: s.stream_maxlen, s.dead_letter_stream: s.dead_letter_maxlen}
    queues = {s.queue, inflight_key(s.queue)}
    bad = []
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        kind = client.type(raw).decode()
        if kind == "none" or client.ttl(raw) > 0:  # gone meanwhile, or expires
            continue
        if kind == "list" and key in queues:
            continue
        if kind == "stream" and key in streams and client.xlen(raw) <= streams[key] * STREAM_SLACK + 100:
            continue
        if KOMBU_BOUNDED.get(key) == kind or (kind == "set" and key.startswith(KOMBU_BINDING_PREFIXES)):
            continue
        bad.append(f"{key} ({kind}, no TTL)")
    return sorted(bad)
