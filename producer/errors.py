"""The client's errors: part of the one tree rooted at `wire.errors.TaggerError`."""

from __future__ import annotations

from wire.errors import DecodeError, TaggerError

__all__ = ["TaggerError", "DecodeError", "QueueFull", "RedisFull", "ResultTimeout"]


class QueueFull(TaggerError):
    """The queue is over `max_queue_length` and the client is set to refuse (or waited in vain)."""


class ResultTimeout(TaggerError, TimeoutError):
    """Results did not arrive in time; `missing` holds the job ids still without one."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class RedisFull(TaggerError):
    """Redis refused the submission: it is at its memory limit (maxmemory with noeviction).

    Whole messages are enqueued or not, in order: `enqueued` holds the job ids Redis accepted
    (the submission's first jobs), `not_enqueued` the rest, to submit again once there is room.
    """

    def __init__(self, message: str, enqueued: list[str], not_enqueued: list[str]) -> None:
        super().__init__(message)
        self.enqueued = enqueued
        self.not_enqueued = not_enqueued
