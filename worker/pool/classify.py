"""Decode each job's image on its own, then one forward pass for all that decoded.

A batch's URL jobs are fetched concurrently (worker.pool.fetch) while its bytes jobs decode, and
each URL job decodes as soon as its bytes arrive. One bad image or URL never fails its batch: it
gets its own failed result, the rest are tagged.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator

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
from worker.pool.fetch import Fetcher, FetchError
from worker.pool.inference import Classifier
from worker.pool.results import failure, tagged
from worker.report import BatchReport, bucket

logger = logging.getLogger(__name__)
# Test hook (never set in production): a job with this product id kills its process, the way
# a decoder crash would, to exercise redelivery and dead-lettering of jobs.
CRASH_HOOK_ENV = "TAGGER_TEST_CRASH_PRODUCT_ID"


def classify(clf: Classifier, jobs: list[Job], attempts: dict[str, int], limits: Limits, review_threshold: float,
             with_colours: bool, report: BatchReport, worker: str | None, fetcher: Fetcher) -> list[TagResult]:
    """One result per job: a tag (with the item's colours if `with_colours`), or the reason its
    image could not be fetched or used."""
    started = time.time()
    t = time.perf_counter()
    crash_on = os.environ.get(CRASH_HOOK_ENV)
    found: list[Preprocessed] = []
    ok: list[Job] = []
    results: list[TagResult] = []

    def failed(job: Job, code: ErrorCode, message: str) -> TagResult:
        return failure(job.job_id, job.product_id, code, message, started, len(jobs), worker,
                       attempts.get(job.job_id, 1), job.enqueued_at, job.metadata)

    decode_s = 0.0
    for job, fetched in _with_fetches(jobs, fetcher):
        if crash_on and job.product_id == crash_on:
            os._exit(70)
        td = time.perf_counter()
        try:
            data = job.image_bytes() if fetched is None else fetched
            if isinstance(data, FetchError):
                raise data
            found.append(preprocess_with_colours(data, limits) if with_colours
                         else Preprocessed(preprocess(data, limits), ()))
            ok.append(job)
        except (ImageError, FetchError) as exc:
            results.append(failed(job, exc.code, str(exc)))
        except DecodeError as exc:
            results.append(failed(job, ErrorCode.INVALID_JOB, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad image never fails its batch
            logger.exception("job %s: unexpected preprocessing error", job.job_id)
            results.append(failed(job, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
        decode_s += time.perf_counter() - td
    report.seconds["decode"] += decode_s
    report.seconds["fetch"] += time.perf_counter() - t - decode_s  # waiting for URL jobs' bytes
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


def _with_fetches(jobs: list[Job], fetcher: Fetcher) -> Iterator[tuple[Job, bytes | FetchError | None]]:
    """Bytes jobs first (None: decode the job's own bytes) while the URL jobs' fetches run, then each
    URL job as its fetch ends, with the bytes or why there are none."""
    by_url = [j for j in jobs if j.image_url is not None]
    fetches = fetcher.fetch_all([j.image_url for j in by_url if j.image_url is not None]) if by_url else iter(())
    yield from ((j, None) for j in jobs if j.image_url is None)
    for i, fetched in fetches:
        yield by_url[i], fetched
