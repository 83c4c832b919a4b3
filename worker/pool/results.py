"""Building a job's one final result: a tag from the model's prediction, or a failure with its code."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

from ml.preprocess import Preprocessed
from ml.taxonomy import Taxonomy
from wire.errors import ErrorCode
from wire.messages import Colour, Job, Score, Status, TagResult, Timings


def failure(job_id: str, product_id: str, code: ErrorCode, message: str, started: float, batch_size: int,
            worker: str | None, attempts: int = 1, enqueued: Any = None,
            metadata: dict[str, Any] | None = None) -> TagResult:
    """A failed result. `enqueued` may come from an invalid job: anything but a finite number is ignored."""
    real = isinstance(enqueued, (int, float)) and not isinstance(enqueued, bool) and math.isfinite(enqueued)
    return TagResult(job_id=job_id, product_id=product_id, status=Status.FAILED, error_code=code, error=message,
                     timings=Timings(enqueued_at=enqueued if real else started, started_at=started,
                                     finished_at=time.time(), batch_size=batch_size),
                     attempts=attempts, worker=worker, metadata=metadata or {})


def tagged(job: Job, top: list[Score], found: Preprocessed, taxonomy: Mapping[str, Taxonomy], arch: str,
           version: str, review_threshold: float, started: float, finished: float, batch_size: int, attempts: int,
           worker: str | None) -> TagResult:
    """A tag: the best class first in `top`, its category and department in the model's `taxonomy`,
    whether a person should look at it, and the item's colours as preprocessing `found` them."""
    tax = taxonomy.get(top[0].label)
    return TagResult(
        job_id=job.job_id, product_id=job.product_id, status=Status.TAGGED,
        label=top[0].label, label_id=top[0].label_id, confidence=top[0].score, top3=top,
        category=tax.category if tax else None, department=tax.department if tax else None,
        needs_review=top[0].score < review_threshold,
        colours=[Colour(name=c.name, hex=c.hex, share=round(c.share, 4)) for c in found.colours],
        colour_low_contrast=found.low_contrast, model=arch, model_version=version,
        timings=Timings(enqueued_at=job.enqueued_at, started_at=started, finished_at=finished, batch_size=batch_size),
        attempts=attempts, worker=worker, metadata=job.metadata)
