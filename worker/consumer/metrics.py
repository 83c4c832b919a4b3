"""Prometheus metrics of a worker node, served by its consumer process on TAGGER_METRICS_PORT.

The consumer process receives every batch's report from the pool processes (worker.report),
so it holds the node's totals and no multiprocess mode is needed: this collector reads
them at scrape time (the batcher's statistics are the one source; `inspect batching` shows
the same numbers). The queue's depth in jobs is read from Redis at each scrape.
"""

from __future__ import annotations

import logging
from itertools import accumulate
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from wire.connection import connect
from wire.queue_depth import queue_depth
from worker.consumer.stats import BATCH_SIZE_BUCKETS
from worker.consumer.transport import QUARANTINED
from worker.report import SECONDS_BUCKETS
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)


def histogram(name: str, doc: str, bounds: tuple[float, ...], counts: list[int], total: float) -> Metric:
    """A Prometheus histogram from per-bucket counts (the last: over the last bound)."""
    cumulative = list(accumulate(counts))
    buckets = [(str(b), c) for b, c in zip(bounds, cumulative)] + [("+Inf", cumulative[-1])]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


class TaggerCollector:
    """Reads the node's batcher (worker.consumer.strategy) at each scrape."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._redis: Any = None

    def collect(self) -> Iterator[Metric]:
        from worker.consumer.strategy import current

        b = current()
        ready = GaugeMetricFamily("tagger_worker_ready", "1 once the node consumes and its model is loaded")
        ready.add_metric([], 1.0 if b is not None and b.model else 0.0)
        yield ready
        if b is not None:
            yield from self._batching(b)
        yield from self._queue()

    def _batching(self, b: Any) -> Iterator[Metric]:
        st, t = b.stats, b.stats.totals
        jobs = CounterMetricFamily("tagger_jobs", "jobs with their first final result, by status and error code",
                                   labels=["status", "error_code"])
        jobs.add_metric(["tagged", ""], t.tagged)
        for code, n in sorted(t.errors.items()):
            jobs.add_metric(["failed", code], n)
        yield jobs
        for name, doc, value in (
                ("tagger_duplicate_jobs", "jobs processed again that already had their final result", t.duplicates),
                ("tagger_dead_lettered_jobs", "jobs that exhausted their attempts", t.dead_lettered),
                ("tagger_batches", "batches run", st.batches),
                ("tagger_batches_lost", "batches whose pool process died or raised (messages requeued)",
                 st.batches_lost),
                ("tagger_rejected_messages", "messages refused unread (content type, size)", st.rejected_messages),
                ("tagger_invalid_messages", "message bodies that could not be read", t.invalid_messages),
                ("tagger_model_reloads", "model reloads that took effect", st.reloads),
                ("tagger_model_load_errors", "checkpoints that failed to load", st.reload_errors)):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter
        quarantined = CounterMetricFamily("tagger_quarantined_items", "queue items moved to the dead letters",
                                          labels=["reason"])
        for reason, n in sorted(QUARANTINED.items()):
            quarantined.add_metric([reason], n)
        yield quarantined
        stages = CounterMetricFamily("tagger_stage_seconds", "pool-process wall time per stage", labels=["stage"])
        for stage, secs in t.seconds.items():
            stages.add_metric([stage], secs)
        yield stages
        yield histogram("tagger_batch_size", "jobs per batch", BATCH_SIZE_BUCKETS, st.batch_size_buckets, t.jobs)
        yield histogram("tagger_queue_wait_seconds", "per job: enqueued to its batch's start", SECONDS_BUCKETS,
                        t.queue_wait_buckets, t.queue_wait_s)
        yield histogram("tagger_latency_seconds", "per job: enqueued to its result published (end to end)",
                        SECONDS_BUCKETS, t.latency_buckets, t.latency_s)
        for name, doc, value in (
                ("tagger_buffered_jobs", "jobs waiting in this node's batcher", b.queue.jobs),
                ("tagger_buffered_messages", "messages waiting in this node's batcher", len(b.queue)),
                ("tagger_inflight_jobs", "jobs in batches running in pool processes",
                 sum(x.jobs for x in b.inflight.values())),
                ("tagger_inflight_batches", "batches running in pool processes", len(b.inflight)),
                ("tagger_pool_processes", "pool processes of this node", b.concurrency)):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        if b.model:
            info = GaugeMetricFamily("tagger_model_info", "the model this node serves (value 1)",
                                     labels=["arch", "version", "device"])
            info.add_metric([str(b.model.get("arch")), str(b.model.get("model_version")),
                             str(b.model.get("device"))], 1.0)
            yield info

    def _queue(self) -> Iterator[Metric]:
        s = self.settings
        try:
            self._redis = self._redis or connect(s.redis_url)
            depth = queue_depth(self._redis, s.queue, s.max_jobs_per_message)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because Redis is away
            logger.warning("metrics: could not read the queue's depth: %s", exc)
            return
        for name, doc, value in (("tagger_queue_jobs", "jobs waiting in the Redis queue (estimated when deep)",
                                  depth.jobs),
                                 ("tagger_queue_messages", "messages waiting in the Redis queue", depth.messages)):
            gauge = GaugeMetricFamily(name, doc, labels=["queue"])
            gauge.add_metric([s.queue], value)
            yield gauge


def serve(settings: WorkerSettings) -> bool:
    """Serve /metrics on the configured port (0: off). A port in use costs one log line, never the worker."""
    if not settings.metrics_port:
        return False
    registry = CollectorRegistry()
    registry.register(TaggerCollector(settings))
    ProcessCollector(registry=registry)
    try:
        start_http_server(settings.metrics_port, registry=registry)
    except OSError as exc:
        logger.error("metrics not served: port %d: %s (set TAGGER_METRICS_PORT; 0 turns them off)",
                     settings.metrics_port, exc)
        return False
    logger.info("metrics on http://0.0.0.0:%d/metrics", settings.metrics_port)
    return True
