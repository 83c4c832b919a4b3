"""The client's settings: the shared ones (wire.settings) plus the producer's own knobs.

Every field reads `TAGGER_<NAME>` (e.g. TAGGER_CHUNK_SIZE); the Redis URL reads `REDIS_URL`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wire.settings import ServiceSettings


class ClientSettings(ServiceSettings):
    """The producer's knobs."""

    chunk_size: int = Field(64, ge=1, le=1024, description="jobs per message in submit_many")
    max_queue_length: int = Field(0, ge=0, description="refuse or wait when the queue holds more messages (0: no limit)")
    when_full: Literal["raise", "wait"] = Field("raise", description="what submit does when the queue is over its limit")
    full_wait_s: float = Field(60.0, gt=0, description="longest wait for room when when_full=wait")
    submit_memory_fraction: float = Field(
        0.9, gt=0, le=1, description="submissions raise RedisFull once Redis uses this fraction of its maxmemory, "
        "leaving the rest to the workers, whose results and acks drain the queue (1: only when Redis refuses)")
