"""What a pool process reports about each batch; the consumer process sums the reports."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, fields
from typing import Any

STAGES = ("parse", "attempts", "fetch", "decode", "forward", "publish")  # fetch: waiting for URL jobs' bytes
# Upper bounds (seconds) of the per-job histograms: queue wait and end-to-end latency (Prometheus' `le`).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def bucket(value: float, bounds: tuple[float, ...] = SECONDS_BUCKETS) -> int:
    """The index of the histogram bucket `value` falls in (len(bounds): over the last bound)."""
    return bisect_left(bounds, value)


def empty_buckets() -> list[int]:
    return [0] * (len(SECONDS_BUCKETS) + 1)


@dataclass
class BatchReport:
    """What a pool process reports about one batch (and, summed, about all of them)."""

    jobs: int = 0
    tagged: int = 0
    failed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    invalid_messages: int = 0
    isolated: int = 0
    isolated_messages: int = 0
    dead_lettered_messages: int = 0
    forward_passes: int = 0
    queue_wait_s: float = 0.0  # summed over jobs
    latency_s: float = 0.0  # enqueued -> published, summed over the jobs published
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    errors: dict[str, int] = field(default_factory=dict)  # failed jobs by error code
    queue_wait_buckets: list[int] = field(default_factory=empty_buckets)  # jobs per SECONDS_BUCKETS bucket
    latency_buckets: list[int] = field(default_factory=empty_buckets)
    model: dict[str, Any] = field(default_factory=dict)

    def add(self, other: dict[str, Any]) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), other[f.name]
            if f.name == "model":
                self.model = theirs or self.model
            elif isinstance(mine, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            elif isinstance(mine, list):
                for i, v in enumerate(theirs):
                    mine[i] += v
            else:
                setattr(self, f.name, mine + theirs)
