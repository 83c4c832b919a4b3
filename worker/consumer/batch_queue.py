"""A small batch queue: items (messages holding one or more jobs) in, batches of jobs out.

A batch closes when it holds `max_batch_size` jobs or `max_batch_bytes` bytes, or when its
oldest item has waited `max_wait_s`, whichever comes first. It always holds at least one item,
even one larger than either limit (a bulk message is never split: it is acknowledged as a whole).
Pure logic with an injectable clock, so it is tested without Celery.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Pending(Generic[T]):
    item: T
    jobs: int
    arrived: float  # monotonic seconds
    size: int = 0  # bytes


class BatchQueue(Generic[T]):
    def __init__(self, max_batch_size: int, max_wait_s: float, max_batch_bytes: int | None = None) -> None:
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive integer, not {max_batch_size!r}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0, not {max_wait_s!r}")
        if max_batch_bytes is not None and (not isinstance(max_batch_bytes, int) or max_batch_bytes < 1):
            raise ValueError(f"max_batch_bytes must be a positive integer or None, not {max_batch_bytes!r}")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_batch_bytes = max_batch_bytes
        self._items: deque[Pending[T]] = deque()
        self._jobs = 0
        self._bytes = 0

    def put(self, item: T, jobs: int, now: float, size: int = 0) -> None:
        """`size`: the item's bytes, counted against `max_batch_bytes`."""
        if jobs < 1:
            raise ValueError("an item holds at least one job")
        if size < 0:
            raise ValueError("an item's size is at least 0 bytes")
        self._items.append(Pending(item, jobs, now, size))
        self._jobs += jobs
        self._bytes += size

    @property
    def jobs(self) -> int:
        """Jobs waiting."""
        return self._jobs

    def __len__(self) -> int:
        """Items waiting."""
        return len(self._items)

    def __iter__(self) -> Iterator[Pending[T]]:
        """The items waiting, oldest first (without taking them)."""
        return iter(self._items)

    def deadline(self) -> float | None:
        """When the oldest waiting item's batch must close (None when empty)."""
        return self._items[0].arrived + self.max_wait_s if self._items else None

    @property
    def size(self) -> int:
        """Bytes waiting."""
        return self._bytes

    def ready(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and (self._jobs >= self.max_batch_size or now >= deadline
                                         or (self.max_batch_bytes is not None and self._bytes >= self.max_batch_bytes))

    def take(self) -> list[Pending[T]]:
        """The next batch, oldest first: at least one item, at most max_batch_size jobs and
        max_batch_bytes bytes otherwise."""
        batch: list[Pending[T]] = []
        jobs = size = 0
        limit = self.max_batch_bytes
        while self._items and (not batch or (jobs + self._items[0].jobs <= self.max_batch_size
                                             and (limit is None or size + self._items[0].size <= limit))):
            p = self._items.popleft()
            batch.append(p)
            jobs += p.jobs
            size += p.size
        self._jobs -= jobs
        self._bytes -= size
        return batch

    def put_back(self, batch: list[Pending[T]]) -> None:
        """A batch taken but not sent returns to the front, in its order, with its arrival times."""
        self._items.extendleft(reversed(batch))
        self._jobs += sum(p.jobs for p in batch)
        self._bytes += sum(p.size for p in batch)

    def drain(self) -> list[Pending[T]]:
        """Everything waiting (on shutdown or a lost connection)."""
        items = list(self._items)
        self._items.clear()
        self._jobs = self._bytes = 0
        return items
