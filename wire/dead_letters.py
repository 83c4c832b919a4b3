"""Entries of the dead-letter stream: what the worker writes there and the client reads back.

Two kinds: a job that exhausted its attempts (field `job`: the whole job, image included, so
it can be replayed), and an item or message that could not be read at all (field `raw`: its
first bytes as text, for an operator to look at; not replayable). Both carry `reason`,
`attempts` and `failed_at`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from wire.messages import Job

RAW_KEEP_CHARS = 8192  # of an unreadable item, kept in its dead letter


def raw_excerpt(item: Any, limit: int = RAW_KEEP_CHARS) -> str:
    """What a dead letter keeps of a raw item: text, at most `limit` characters."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        text = bytes(item[: limit + 1]).decode("utf-8", "replace")
    elif isinstance(item, str):
        text = item[: limit + 1]
    else:
        try:
            text = json.dumps(item)[: limit + 1]
        except (TypeError, ValueError, RecursionError):
            text = repr(item)[: limit + 1]
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def job_fields(job: Job, reason: str, attempts: int) -> dict[str, Any]:
    return {"job": job.model_dump_json(), "reason": reason, "attempts": attempts, "failed_at": time.time()}


def raw_fields(item: Any, reason: str, attempts: int = 1, queue: str = "") -> dict[str, Any]:
    return {"raw": raw_excerpt(item), "reason": reason, "attempts": attempts, "queue": queue,
            "failed_at": time.time()}


@dataclass(frozen=True)
class DeadLetter:
    """One entry, as the client reads it: `job` (replayable) or `raw` (not)."""

    entry_id: str
    reason: str
    attempts: int
    failed_at: float
    job: Job | None = None
    raw: str | None = None

    @classmethod
    def from_entry(cls, entry_id: bytes, fields: dict[bytes, bytes]) -> "DeadLetter":
        text = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        job = None
        if "job" in text:
            try:
                job = Job.model_validate_json(text["job"])
            except ValueError:
                text.setdefault("raw", text["job"])
        return cls(entry_id=entry_id.decode(), reason=text.get("reason", ""), attempts=_number(text, "attempts", int),
                   failed_at=_number(text, "failed_at", float), job=job, raw=text.get("raw"))


def _number(text: dict[str, str], key: str, kind: type) -> Any:
    try:
        return kind(text.get(key) or 0)
    except ValueError:
        return kind(0)
