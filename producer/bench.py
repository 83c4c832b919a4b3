"""Benchmark: throughput and latency through the queue, against baselines, side by side in one run.

    python -m producer.bench            # a few minutes on a 2-core machine
    python -m producer.bench --quick    # about a minute: smaller runs, same structure

Starts its own Redis (or uses --redis-url) and, for each variant in turn, worker nodes
with the same number of pool processes, on the same images:

1. ceiling: the model alone, in process, batch sizes 1..1024 (the worker's inference call on
   decoded images: normalise, forward, softmax, top 3; threads = worker processes);
2. naive: one Celery task per image (`delay()` per job), no batching;
3. celery-batches: the package made for this (if installed);
4. the service, closed loop: bulk (`submit_many`) and single-image jobs (one message each),
   end to end and draining a pre-filled queue;
5. the service, open loop: Poisson arrivals at 25/50/75/100% of its single-image peak,
   latency percentiles (submit -> result in Redis), queue wait versus compute;
6. peak resident memory of the worker processes, and where each image's time goes.

Writes bench.json, bench.md and two PNG plots into --out. Needs the `worker` extra (torch)
for the ceiling and the workers; the client side of it imports no torch.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import numpy as np

from producer.client import TaggerClient
from producer.keys import result_key
from producer.local import LocalWorker
from producer.messages import Job, TagResult
from producer.redis_server import RedisServer

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LOADS = (0.25, 0.5, 0.75, 1.0)


# --- inputs and measurements in process -------------------------------------------------------


def test_pngs(n: int, data_dir: str | None) -> tuple[list[bytes], list[int]]:
    """Fashion-MNIST test images as the PNG files a backend would send."""
    from PIL import Image

    from ml import data

    split = data.load_split(data.resolve_root(data_dir), train=False)
    pngs, labels = [], []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(split.images[i % len(split)].numpy(), mode="L").save(buf, format="PNG")
        pngs.append(buf.getvalue())
        labels.append(int(split.labels[i % len(split)]))
    return pngs, labels


def best_rate(fn: Callable[[], int], seconds: float, repeats: int = 3) -> float:
    """Items per second, best of `repeats` rounds (the other rounds measure the neighbours)."""
    best = 0.0
    for _ in range(repeats):
        done, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            done += fn()
        best = max(best, done / elapsed)
    return best


def ceiling(checkpoint: Path, threads: int, sizes: tuple[int, ...], seconds: float, images: np.ndarray) -> dict[str, Any]:
    """The worker's own inference call (uint8 -> normalise -> forward -> softmax -> top 3), in process."""
    from worker.inference import Classifier

    clf = Classifier(checkpoint, threads=threads)
    rates = {}
    for bs in sizes:
        x = np.ascontiguousarray(np.resize(images, (bs, 28, 28)))
        clf.predict(x)  # warm up
        rates[bs] = round(best_rate(lambda: (clf.predict(x), bs)[1], seconds), 1)
    return {"threads": threads, "arch": clf.checkpoint.arch, "model_version": clf.checkpoint.version,
            "images_per_second": rates}


def preprocessing(pngs: list[bytes], seconds: float) -> dict[str, float]:
    from ml import preprocess_bench
    from ml.preprocess import preprocess

    blobs = preprocess_bench.inputs()
    out = {"fashion_mnist_png_28": best_rate(lambda: sum(1 for p in pngs[:200] if preprocess(p) is not None), seconds)}
    for name, blob in blobs.items():
        if "1000" in name:
            out[name] = best_rate(lambda b=blob: (preprocess(b), 1)[1], seconds)
    return {k: round(v, 1) for k, v in out.items()}


# --- processes --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def node_processes(worker: LocalWorker) -> dict[str, list[int]]:
    return {"consumer": [worker.proc.pid], "pool": worker.pool_pids()}


def node_peak_rss_mb(worker: LocalWorker) -> dict[str, list[float]]:
    return {k: [peak_rss_mb(p) for p in v] for k, v in node_processes(worker).items()}


def wait_keys(client: TaggerClient, ids: list[str], timeout: float, window: int = 500) -> float:
    """Poll the result backend until every id has a result; returns when the last one arrived.

    The same waiting for every variant, and cheap: one EXISTS over the oldest `window`
    pending ids every 10 ms (results arrive roughly in order).
    """
    pending = list(ids)
    deadline = time.monotonic() + timeout
    while pending:
        head = pending[:window]
        if client.redis.exists(*[result_key(i) for i in head]) == len(head):
            pending = pending[len(head):]
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} results missing after {timeout} s")
        time.sleep(0.01)
    return time.perf_counter()


# --- baselines --------------------------------------------------------------------------------


def run_baseline(name: str, url: str, logs: Path, pngs: list[bytes], processes: int, env: dict[str, str]) -> dict[str, Any]:
    """End to end with delay() per job, then draining a pre-filled queue."""
    from producer import bench_baselines

    app = getattr(bench_baselines, name)
    app.conf.broker_url = app.conf.result_backend = url
    task = app.tasks[f"{name}.tag"]
    queue = f"bench-{name}"
    worker = LocalWorker(url, f"bench-{name}", logs, concurrency=processes, loglevel="WARNING",
                         app=f"producer.bench_baselines:{name}", **env).wait_ready(require_model=False)
    client = TaggerClient(redis_url=url)
    try:
        b64 = [base64.b64encode(p).decode() for p in pngs]
        warm = [task.delay(b64[0], "warm-up").id for _ in range(4 * processes)]  # every process has its model
        wait_keys(client, warm, 120)
        t0 = time.perf_counter()
        ids = [task.delay(b, f"p{i}").id for i, b in enumerate(b64)]
        published = time.perf_counter() - t0
        e2e = len(ids) / (wait_keys(client, ids, 600) - t0)

        app.control.cancel_consumer(queue, destination=[worker.node], reply=True)
        ids = [task.delay(b, f"d{i}").id for i, b in enumerate(b64)]
        t0 = time.perf_counter()
        app.control.add_consumer(queue, destination=[worker.node], reply=True)
        drain = len(ids) / (wait_keys(client, ids, 600) - t0)
        return {"jobs": len(pngs), "end_to_end_images_per_second": round(e2e, 1),
                "producer_publishes_per_second": round(len(pngs) / published, 1),
                "drain_images_per_second": round(drain, 1), "peak_rss_mb": node_peak_rss_mb(worker)}
    finally:
        client.close()
        worker.stop()


# --- the service ------------------------------------------------------------------------------


class Service:
    def __init__(self, url: str, logs: Path, processes: int, env: dict[str, str], external: bool) -> None:
        self.client = TaggerClient(redis_url=url)
        self.worker = None if external else LocalWorker(url, "bench-service", logs, concurrency=processes,
                                                        loglevel="WARNING", **env).wait_ready()

    def stats(self) -> dict[str, Any]:
        if self.worker is None:
            return {}
        return self.worker.control("batching")

    def cpu(self) -> dict[str, float]:
        if self.worker is None:
            return {}
        procs = node_processes(self.worker)
        return {k: sum(cpu_seconds(p) for p in v) for k, v in procs.items()}

    def closed_loop(self, pngs: list[bytes], bulk: bool, label: str) -> dict[str, Any]:
        before, cpu0 = self.stats(), self.cpu()
        t0, pcpu0 = time.perf_counter(), time.process_time()
        jobs = [Job.from_bytes(p, f"{label}-{i}") for i, p in enumerate(pngs)]  # base64 is the producer's work
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


# --- report -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": os.getloadavg()}


def markdown(r: dict[str, Any]) -> str:
    naive = r.get("naive", {}).get("end_to_end_images_per_second") or 0
    ceil = max(r["ceiling"]["images_per_second"].values())
    lines = [f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores; load average at start "
             f"{', '.join(f'{x:.1f}' for x in r['machine']['load_average_at_start'])}. "
             f"{r['config']['processes']} worker processes per variant, model `{r['ceiling']['arch']}`. "
             f"Command: `{r['config']['command']}`.", "",
             "| variant | images/s | vs naive | mean batch | note |", "|---|---:|---:|---:|---|"]

    def row(name: str, rate: float, batch: Any = "", note: str = "") -> None:
        ratio = f"{rate / naive:.1f}x" if naive else ""
        lines.append(f"| {name} | {rate:,.0f} | {ratio} | {batch} | {note} |")

    row("ceiling: model alone in process (best batch size)", ceil, "", f"{r['ceiling']['threads']} threads")
    if "naive" in r:
        row("naive: a task per image, end to end", naive, 1, f"producer {r['naive']['producer_publishes_per_second']:,.0f} publishes/s")
        row("naive: draining a pre-filled queue", r["naive"]["drain_images_per_second"], 1)
    if "celery_batches" in r:
        cb = r["celery_batches"]
        row("celery-batches: end to end", cb["end_to_end_images_per_second"], "", "delay() per job")
        row("celery-batches: draining a pre-filled queue", cb["drain_images_per_second"])
    s = r["service"]
    row("service, bulk (`submit_many`), end to end", s["bulk"]["images_per_second"], s["bulk"]["mean_batch_size"],
        f"{s['bulk']['images_per_second'] / ceil:.0%} of the ceiling")
    row("service, single-image jobs, end to end", s["single"]["images_per_second"], s["single"]["mean_batch_size"],
        "one message and one call per job")
    if "single_drain" in s:  # not measured with --external-workers
        row("service, single-image jobs, draining", s["single_drain"]["images_per_second"],
            s["single_drain"]["mean_batch_size"])
    lines += ["", f"Open loop, single-image jobs, Poisson arrivals (max batch wait {r['config']['max_batch_wait_ms']} ms):",
              "", "| load | offered/s | achieved/s | p50 ms | p95 ms | p99 ms | queue wait p50 | compute p50 | mean batch |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for frac, o in zip(LOADS, s["open_loop"]):
        lines.append(f"| {frac:.0%} | {o['offered_per_second']:,.0f} | {o['achieved_per_second']:,.0f} | "
                     f"{o['latency_ms']['p50']} | {o['latency_ms']['p95']} | {o['latency_ms']['p99']} | "
                     f"{o['queue_wait_ms_p50']} | {o['compute_ms_p50']} | {o['mean_batch_size']} |")
    lines += ["", "Where an image's time goes (microseconds per image, closed loop):", "",
              "| stage | bulk | single |", "|---|---:|---:|"]
    for k in s["bulk"]["time_per_image_us"]:
        lines.append(f"| {k} | {s['bulk']['time_per_image_us'][k]} | {s['single']['time_per_image_us'].get(k, '')} |")
    if rss := s.get("peak_rss_mb"):  # not measured with --external-workers
        lines += ["", f"Peak resident memory, service worker: consumer {rss['consumer']} MB, pool processes "
                  f"{rss['pool']} MB."]
    if "preprocessing" in r:
        lines += ["", "Preprocessing, one core: " + "; ".join(f"{k} {v:,.0f}/s" for k, v in r["preprocessing"].items())]
    return "\n".join(lines) + "\n"


def plots(r: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rates = r["ceiling"]["images_per_second"]
    ax.plot([int(k) for k in rates], list(rates.values()), "o-", label="model alone, in process")
    for name, value, style in (("service, bulk", r["service"]["bulk"]["images_per_second"], "--"),
                               ("service, single-image jobs", r["service"]["single"]["images_per_second"], ":"),
                               ("naive task per image", r.get("naive", {}).get("end_to_end_images_per_second"), "-.")):
        if value:
            ax.axhline(value, ls=style, color="gray")
            ax.text(1, value, f" {name}: {value:,.0f}/s", va="bottom", fontsize=8)
    ax.set(xscale="log", xlabel="batch size", ylabel="images per second",
           title=f"Throughput ({r['ceiling']['arch']}, {r['config']['processes']} processes / threads)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(out / "throughput.png", dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ol = r["service"]["open_loop"]
    x = [o["offered_per_second"] for o in ol]
    for q in ("p50", "p95", "p99"):
        ax.plot(x, [o["latency_ms"][q] for o in ol], "o-", label=q)
    ax.axhline(r["config"]["max_batch_wait_ms"] + 100, ls="--", color="gray", label="target for p99 at 50%")
    ax.set(xlabel="offered load (single-image jobs per second, Poisson)", ylabel="submit -> result (ms)",
           title="Latency versus offered load", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out / "latency.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about a minute: fewer jobs, shorter open-loop runs")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for bench.json, bench.md, plots")
    p.add_argument("--processes", type=int, default=2, help="pool processes per worker node (every variant)")
    p.add_argument("--jobs", type=int, default=None, help="jobs per closed-loop run (default 10,000; quick 1,000)")
    p.add_argument("--open-loop-seconds", type=float, default=None, help="seconds per load level (default 8; quick 2)")
    p.add_argument("--max-batch-wait-ms", type=float, default=10.0, help="the service's max batch wait")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of starting a private one")
    p.add_argument("--external-workers", action="store_true",
                   help="service workers already consume --redis-url (memory and stages are then not measured)")
    p.add_argument("--skip-baselines", action="store_true", help="only the ceiling and the service")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: $FASHION_MNIST_ROOT or data/)")
    args = p.parse_args(argv)
    n = args.jobs or (1000 if args.quick else 10_000)
    seconds = args.open_loop_seconds or (2.0 if args.quick else 8.0)
    args.out.mkdir(parents=True, exist_ok=True)

    from worker.settings import WorkerSettings

    checkpoint = WorkerSettings().checkpoint
    pngs, _labels = test_pngs(n, args.data_dir)
    report: dict[str, Any] = {"machine": machine(), "config": {
        "command": "python -m producer.bench" + (" --quick" if args.quick else ""), "jobs": n,
        "processes": args.processes, "max_batch_wait_ms": args.max_batch_wait_ms, "checkpoint": str(checkpoint),
        "open_loop_seconds": seconds}}
    print("ceiling: the model alone in process ...", flush=True)
    from ml.preprocess import preprocess

    decoded = np.stack([preprocess(p) for p in pngs[:1024]])
    report["ceiling"] = ceiling(checkpoint, args.processes, BATCH_SIZES[::2] if args.quick else BATCH_SIZES,
                                0.2 if args.quick else 0.5, decoded)
    report["preprocessing"] = preprocessing(pngs, 0.2 if args.quick else 0.5)
    env = {"max_batch_wait_ms": args.max_batch_wait_ms, "stream_maxlen": 1_000_000}
    with ExitStack() as stack:
        url = args.redis_url or stack.enter_context(RedisServer()).url
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tagger-bench-")))
        if not args.skip_baselines:
            print("naive baseline: a Celery task per image ...", flush=True)
            report["naive"] = run_baseline("naive", url, logs, pngs[: max(500, n // 4)], args.processes, {})
            try:
                import celery_batches  # noqa: F401

                print("celery-batches baseline ...", flush=True)
                report["celery_batches"] = run_baseline("cbatches", url, logs, pngs[: max(500, n // 4)],
                                                        args.processes, {})
            except ImportError:
                print("celery-batches not installed: skipped")
        print("the service: closed loop ...", flush=True)
        svc = Service(url, logs, args.processes, env, args.external_workers)
        stack.callback(svc.close)
        s: dict[str, Any] = {}
        s["bulk"] = svc.closed_loop(pngs, bulk=True, label="bulk")
        s["single"] = svc.closed_loop(pngs[: max(500, n // 2)], bulk=False, label="single")
        if svc.worker is not None:
            s["single_drain"] = svc.drain(pngs[: max(500, n // 2)], label="drain")
        peak = s["single"]["images_per_second"]
        print(f"the service: open loop at {', '.join(f'{x:.0%}' for x in LOADS)} of {peak:,.0f}/s ...", flush=True)
        s["open_loop"] = [svc.open_loop(pngs, frac * peak, seconds, label=f"open{int(frac * 100)}") for frac in LOADS]
        s["peak_rss_mb"] = svc.peak_rss()
        report["service"] = s
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "bench.md").write_text(md)
    plots(report, args.out)
    print("\n" + md)
    print(f"wrote {args.out}/bench.json, bench.md, throughput.png, latency.png")
    return report


if __name__ == "__main__":
    main()
