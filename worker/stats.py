"""Per-worker batching statistics, kept in the consumer process and shown by `inspect batching`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchingStats:
    started: float = field(default_factory=time.time)
    batches: int = 0
    jobs: int = 0
    max_batch_size: int = 0
    tagged: int = 0
    failed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    invalid_messages: int = 0
    rejected_messages: int = 0
    isolated_jobs: int = 0
    batches_lost: int = 0  # the pool process died or raised: messages requeued
    queue_wait_s: float = 0.0
    busy_s: float = 0.0  # summed batch wall time in pool processes
    seconds: dict[str, float] = field(default_factory=dict)
    first_batch_at: float | None = None
    last_batch_at: float | None = None

    def add(self, report: dict[str, Any], wall_s: float) -> None:
        now = time.time()
        self.first_batch_at = self.first_batch_at or now - wall_s
        self.last_batch_at = now
        self.batches += 1
        self.jobs += report["jobs"]
        self.max_batch_size = max(self.max_batch_size, report["jobs"])
        for name in ("tagged", "failed", "duplicates", "dead_lettered", "invalid_messages"):
            setattr(self, name, getattr(self, name) + report[name])
        self.isolated_jobs += report["isolated"]
        self.queue_wait_s += report["queue_wait_s"]
        self.busy_s += wall_s
        for k, v in report["seconds"].items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v

    def summary(self) -> dict[str, Any]:
        active = (self.last_batch_at - self.first_batch_at) if self.first_batch_at and self.last_batch_at else 0.0
        done = self.tagged + self.failed
        return {
            "batches": self.batches,
            "jobs": self.jobs,
            "mean_batch_size": round(self.jobs / self.batches, 2) if self.batches else 0.0,
            "max_batch_size": self.max_batch_size,
            "tagged": self.tagged,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "invalid_messages": self.invalid_messages,
            "rejected_messages": self.rejected_messages,
            "isolated_jobs": self.isolated_jobs,
            "batches_lost": self.batches_lost,
            "mean_queue_wait_ms": round(1000 * self.queue_wait_s / self.jobs, 2) if self.jobs else 0.0,
            "images_per_second": round(done / active, 1) if active > 0 else 0.0,
            "busy_seconds": round(self.busy_s, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "uptime_s": round(time.time() - self.started, 1),
        }
