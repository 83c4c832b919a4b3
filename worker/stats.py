"""Batch statistics: what a pool process reports per batch, and the consumer's running totals."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

STAGES = ("parse", "attempts", "decode", "forward", "publish")


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
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    model: dict[str, Any] = field(default_factory=dict)

    def add(self, other: dict[str, Any]) -> None:
        for f in fields(self):
            if f.name == "seconds":
                for k, v in other["seconds"].items():
                    self.seconds[k] = self.seconds.get(k, 0.0) + v
            elif f.name == "model":
                self.model = other["model"] or self.model
            else:
                setattr(self, f.name, getattr(self, f.name) + other[f.name])


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

    def add(self, report: dict[str, Any], wall_s: float) -> None:
        now = time.time()
        self.first_batch_at = self.first_batch_at or now - wall_s
        self.last_batch_at = now
        self.batches += 1
        self.max_batch_size = max(self.max_batch_size, report["jobs"])
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
