"""A small batch queue: items (messages holding one or more jobs) in, batches of jobs out.

A batch closes when it holds `max_batch_size` jobs or when its oldest item has waited
`max_wait_s`, whichever comes first. It always holds at least one item, even one larger
than `max_batch_size` (a bulk message is never split: it is acknowledged as a whole).
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


class BatchQueue(Generic[T]):
    def __init__(self, max_batch_size: int, max_wait_s: float) -> None:
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive integer, not {max_batch_size!r}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0, not {max_wait_s!r}")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._items: deque[Pending[T]] = deque()
        self._jobs = 0

    def put(self, item: T, jobs: int, now: float) -> None:
        if jobs < 1:
            raise ValueError("an item holds at least one job")
        self._items.append(Pending(item, jobs, now))
        self._jobs += jobs

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

    def ready(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and (self._jobs >= self.max_batch_size or now >= deadline)

    def take(self) -> list[Pending[T]]:
        """The next batch, oldest first: at least one item, at most max_batch_size jobs otherwise."""
        batch: list[Pending[T]] = []
        size = 0
        while self._items and (not batch or size + self._items[0].jobs <= self.max_batch_size):
            p = self._items.popleft()
            batch.append(p)
            size += p.jobs
        self._jobs -= size
        return batch

    def put_back(self, batch: list[Pending[T]]) -> None:
        """A batch taken but not sent returns to the front, in its order, with its arrival times."""
        self._items.extendleft(reversed(batch))
        self._jobs += sum(p.jobs for p in batch)

    def drain(self) -> list[Pending[T]]:
        """Everything waiting (on shutdown or a lost connection)."""
        items = list(self._items)
        self._items.clear()
        self._jobs = 0
        return items
