"""Decode each job's image on its own, then one forward pass for all that decoded.

One bad image never fails its batch: it gets its own failed result, the rest are tagged.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from ml.preprocess import (
    ImageError,
    Limits,
    Preprocessed,
    preprocess,
    preprocess_with_colours,
)
from wire.errors import DecodeError, ErrorCode
from wire.messages import Job, Score, TagResult
from worker.pool.inference import Classifier
from worker.pool.results import failure, tagged
from worker.report import BatchReport, bucket

logger = logging.getLogger(__name__)
# Test hook (never set in production): a job with this product id kills its process, the way
# a decoder crash would, to exercise redelivery and dead-lettering of jobs.
CRASH_HOOK_ENV = "TAGGER_TEST_CRASH_PRODUCT_ID"


def classify(clf: Classifier, jobs: list[Job], attempts: dict[str, int], limits: Limits, review_threshold: float,
             with_colours: bool, report: BatchReport, worker: str | None) -> list[TagResult]:
    """One result per job: a tag (with the item's colours if `with_colours`), or the reason its
    image could not be used."""
    started = time.time()
    t = time.perf_counter()
    crash_on = os.environ.get(CRASH_HOOK_ENV)
    found: list[Preprocessed] = []
    ok: list[Job] = []
    results: list[TagResult] = []

    def failed(job: Job, code: ErrorCode, message: str) -> TagResult:
        return failure(job.job_id, job.product_id, code, message, started, len(jobs), worker,
                       attempts.get(job.job_id, 1), job.enqueued_at, job.metadata)

    for job in jobs:
        if crash_on and job.product_id == crash_on:
            os._exit(70)
        try:
            data = job.image_bytes()
            found.append(preprocess_with_colours(data, limits) if with_colours
                         else Preprocessed(preprocess(data, limits), ()))
            ok.append(job)
        except ImageError as exc:
            results.append(failed(job, exc.code, str(exc)))
        except DecodeError as exc:
            results.append(failed(job, ErrorCode.INVALID_JOB, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad image never fails its batch
            logger.exception("job %s: unexpected preprocessing error", job.job_id)
            results.append(failed(job, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
    report.seconds["decode"] += time.perf_counter() - t
    if ok:
        t = time.perf_counter()
        pred = clf.predict(np.stack([f.image for f in found]))
        report.seconds["forward"] += time.perf_counter() - t
        report.forward_passes += 1
        if len(pred.top_ids) != len(ok):
            raise RuntimeError(f"model returned {len(pred.top_ids)} predictions for {len(ok)} images")
        finished = time.time()
        ck = clf.checkpoint
        for job, f, ids, scores in zip(ok, found, pred.top_ids.tolist(), pred.top_scores.tolist()):
            top = [Score(label=clf.classes[i], label_id=i, score=s) for i, s in zip(ids, scores)]
            results.append(tagged(job, top, f, clf.taxonomy, ck.arch, ck.version, review_threshold, started,
                                  finished, len(jobs), attempts.get(job.job_id, 1), worker))
    for job in jobs:
        wait = max(0.0, started - job.enqueued_at)
        report.queue_wait_s += wait
        report.queue_wait_buckets[bucket(wait)] += 1
    return results
