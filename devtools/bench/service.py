"""The service under load: closed loop (bulk and single-image jobs), a drained queue, open loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from devtools.bench.processes import (
    cpu_seconds,
    node_peak_rss_mb,
    node_processes,
    wait_keys,
)
from devtools.local import LocalWorker
from producer.client import TaggerClient
from wire.messages import Job, TagResult


class Service:
    """The service's workers (from this checkout, or `root`: another revision) and a client."""

    def __init__(self, url: str, logs: Path, processes: int, env: dict[str, Any], external: bool,
                 root: Path | None = None, name: str = "bench-service", extra_args: tuple[str, ...] = ()) -> None:
        self.client = TaggerClient(redis_url=url, **({"queue": env["queue"]} if "queue" in env else {}))
        extra = {"root": root} if root else {}
        self.worker = None if external else LocalWorker(url, name, logs, concurrency=processes, loglevel="WARNING",
                                                        extra_args=extra_args, **extra, **env).wait_ready()

    def stats(self) -> dict[str, Any]:
        if self.worker is None:
            return {}
        return self.worker.control("batching")

    def cpu(self) -> dict[str, float]:
        if self.worker is None:
            return {}
        procs = node_processes(self.worker)
        return {k: sum(cpu_seconds(p) for p in v) for k, v in procs.items()}

    def closed_loop(self, images: list[bytes] | list[str], bulk: bool, label: str) -> dict[str, Any]:
        """`images`: image files, or URLs the workers fetch."""
        before, cpu0 = self.stats(), self.cpu()
        t0, pcpu0 = time.perf_counter(), time.process_time()
        jobs = [Job.from_url(p, f"{label}-{i}") if isinstance(p, str) else Job.from_bytes(p, f"{label}-{i}")
                for i, p in enumerate(images)]  # base64 is the producer's work
        if bulk:
            self.client.submit_jobs(jobs)
        else:
            for j in jobs:  # one message per job, one call per job, as uploads arrive
                self.client.submit_jobs([j], chunk_size=1)
        published, submit_cpu = time.perf_counter() - t0, time.process_time() - pcpu0
        done = wait_keys(self.client, [j.job_id for j in jobs], 600)
        results = self.client.fetch([j.job_id for j in jobs])
        return {"jobs": len(jobs), "images_per_second": round(len(jobs) / (done - t0), 1),
                "producer_publishes_per_second": round(len(jobs) / published, 1),
                "mean_batch_size": round(float(np.mean([r.timings.batch_size for r in results.values()])), 1),
                "tagged": sum(r.status.value == "tagged" for r in results.values()),
                "missing": len(jobs) - len(results),
                "time_per_image_us": self._breakdown(before, cpu0, submit_cpu, len(jobs))}

    def drain(self, pngs: list[bytes], label: str) -> dict[str, Any]:
        """Single-image messages pre-filled while the worker does not consume, then drained."""
        assert self.worker is not None
        app = self._control_app()
        queue = self.client.settings.queue
        app.control.cancel_consumer(queue, destination=[self.worker.node], reply=True)
        jobs = [Job.from_bytes(p, f"{label}-{i}") for i, p in enumerate(pngs)]
        self.client.submit_jobs(jobs, chunk_size=1)
        t0 = time.perf_counter()
        app.control.add_consumer(queue, destination=[self.worker.node], reply=True)
        done = wait_keys(self.client, [j.job_id for j in jobs], 600)
        app.close()
        results = self.client.fetch([j.job_id for j in jobs])
        return {"jobs": len(jobs), "images_per_second": round(len(jobs) / (done - t0), 1),
                "missing": len(jobs) - len(results),
                "mean_batch_size": round(float(np.mean([r.timings.batch_size for r in results.values()])), 1)}

    def open_loop(self, pngs: list[bytes], rate: float, seconds: float, label: str, seed: int = 0) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        start_id = self._stream_tail()
        t0 = time.time()
        next_at, i, submitted = t0, 0, {}
        while next_at < t0 + seconds:
            now = time.time()
            if next_at > now:
                time.sleep(next_at - now)
            job = Job.from_bytes(pngs[i % len(pngs)], f"{label}-{i}", job_id=f"{label}-{i}")
            self.client.submit_jobs([job], chunk_size=1)
            submitted[job.job_id] = job.enqueued_at
            i += 1
            next_at += rng.exponential(1.0 / rate)
        elapsed = time.time() - t0
        wait_keys(self.client, list(submitted), 600)
        arrived = self._stream_since(start_id)
        lat, queue_wait, compute, publish = [], [], [], []
        for job_id, (ts, r) in arrived.items():
            if job_id in submitted:
                lat.append(1000 * (ts - submitted[job_id]))
                queue_wait.append(1000 * (r.timings.started_at - r.timings.enqueued_at))
                compute.append(1000 * (r.timings.finished_at - r.timings.started_at))
                publish.append(1000 * (ts - r.timings.finished_at))
        pct = lambda a, q: round(float(np.percentile(a, q)), 1)  # noqa: E731
        return {"offered_per_second": round(rate, 1), "achieved_per_second": round(len(submitted) / elapsed, 1),
                "jobs": len(submitted), "missing": len(set(submitted) - set(arrived)), "latency_ms": {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99)},
                "queue_wait_ms_p50": pct(queue_wait, 50), "compute_ms_p50": pct(compute, 50),
                "publish_ms_p50": pct(publish, 50),
                "mean_batch_size": round(float(np.mean([arrived[j][1].timings.batch_size for j in submitted])), 1)}

    def peak_rss(self) -> dict[str, list[float]]:
        return {} if self.worker is None else node_peak_rss_mb(self.worker)

    def close(self) -> None:
        self.client.close()
        if self.worker is not None:
            self.worker.stop()

    # helpers

    def _control_app(self) -> Any:
        from celery import Celery

        return Celery(broker=self.client.settings.redis_url)

    def _breakdown(self, before: dict[str, Any], cpu0: dict[str, float], submit_cpu: float, n: int) -> dict[str, float]:
        """Microseconds per image: producer CPU, each stage in the pool processes, consumer CPU."""
        after, cpu1 = self.stats(), self.cpu()
        out = {"producer: build jobs + publish, CPU": 1e6 * submit_cpu / n}
        for stage, secs in after.get("stage_seconds", {}).items():
            out[f"pool: {stage}"] = 1e6 * (secs - before.get("stage_seconds", {}).get(stage, 0.0)) / n
        for k in cpu1:
            out[f"{k} process CPU"] = 1e6 * (cpu1[k] - cpu0.get(k, 0.0)) / n
        return {k: round(v, 1) for k, v in out.items()}

    def _stream_tail(self) -> str:
        last = self.client.redis.xrevrange(self.client.settings.results_stream, count=1)
        return last[0][0].decode() if last else "0"

    def _stream_since(self, start_id: str) -> dict[str, tuple[float, TagResult]]:
        out, last = {}, start_id
        stream = self.client.settings.results_stream
        while True:
            entries = self.client.redis.xrange(stream, min=f"({last}" if last != "0" else "-", count=5000)
            if not entries:
                return out
            for entry_id, fields in entries:
                last = entry_id.decode()
                out[fields[b"job_id"].decode()] = (int(last.split("-")[0]) / 1000.0, TagResult.parse(fields[b"result"]))
