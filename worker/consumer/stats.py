"""The consumer process's running totals of its batches: what `inspect batching` shows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from worker.report import BatchReport, bucket

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)  # jobs (Prometheus' `le`)


@dataclass
class BatchingStats:
    """Kept by the consumer process; `inspect batching` shows `summary()`."""

    started: float = field(default_factory=time.time)
    totals: BatchReport = field(default_factory=BatchReport)
    batches: int = 0
    max_batch_size: int = 0
    rejected_messages: int = 0  # refused unread by the consumer (not JSON, too large)
    batches_lost: int = 0  # the pool process died or raised: messages requeued
    busy_s: float = 0.0  # summed batch wall time in pool processes
    first_batch_at: float | None = None
    last_batch_at: float | None = None
    batch_size_buckets: list[int] = field(default_factory=lambda: [0] * (len(BATCH_SIZE_BUCKETS) + 1))
    reloads: int = 0  # model reloads that took effect
    reload_errors: int = 0  # checkpoints that failed to load (the old model kept serving)

    def add(self, report: dict[str, Any], wall_s: float) -> None:
        now = time.time()
        self.first_batch_at = self.first_batch_at or now - wall_s
        self.last_batch_at = now
        self.batches += 1
        self.max_batch_size = max(self.max_batch_size, report["jobs"])
        self.batch_size_buckets[bucket(report["jobs"], BATCH_SIZE_BUCKETS)] += 1
        self.busy_s += wall_s
        self.totals.add(report)

    def summary(self) -> dict[str, Any]:
        t = self.totals
        active = (self.last_batch_at - self.first_batch_at) if self.first_batch_at and self.last_batch_at else 0.0
        return {
            "batches": self.batches,
            "jobs": t.jobs,
            "mean_batch_size": round(t.jobs / self.batches, 2) if self.batches else 0.0,
            "max_batch_size": self.max_batch_size,
            "tagged": t.tagged,
            "failed": t.failed,
            "duplicates": t.duplicates,
            "dead_lettered": t.dead_lettered,
            "invalid_messages": t.invalid_messages,
            "rejected_messages": self.rejected_messages,
            "isolated_jobs": t.isolated,
            "isolated_messages": t.isolated_messages,
            "dead_lettered_messages": t.dead_lettered_messages,
            "batches_lost": self.batches_lost,
            "mean_queue_wait_ms": round(1000 * t.queue_wait_s / t.jobs, 2) if t.jobs else 0.0,
            "images_per_second": round((t.tagged + t.failed) / active, 1) if active > 0 else 0.0,
            "busy_seconds": round(self.busy_s, 3),
            "stage_seconds": {k: round(v, 3) for k, v in t.seconds.items()},
            "uptime_s": round(time.time() - self.started, 1),
        }
