"""What a pool process reports about each batch; the consumer process sums the reports."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

STAGES = ("parse", "attempts", "fetch", "decode", "forward", "publish")  # fetch: waiting for URL jobs' bytes


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
