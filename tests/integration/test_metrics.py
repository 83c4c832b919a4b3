"""Each worker node's Prometheus /metrics after a known run, read as Prometheus reads them; the queue's
depth in jobs; the health check; a metrics port already in use."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.request

from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from devtools.redis_server import free_port
from tests.integration.accounting import FAST, jobs_from, until
from tests.integration.senders import sender_app, settle
from wire.messages import Job
from worker.settings import REPO_ROOT as ROOT


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a node's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_a_known_run_exactly(fleet, test_images) -> None:
    port = free_port()
    w = fleet.worker("w", concurrency=2, metrics_port=port, **FAST).wait_ready()
    client = fleet.client()
    good = jobs_from(test_images, 100, "m")
    bad = [Job.from_bytes(b"not an image", "x", job_id="bad-1"), Job.from_bytes(os.urandom(64), "x", job_id="bad-2"),
           Job.from_bytes(b"", "x", job_id="bad-3")]
    client.submit_jobs(good + bad, chunk_size=10)
    png = base64.b64encode(test_images[0][0]).decode()
    with sender_app(fleet.url) as sender:
        [sent] = settle([sender.send_task("tagger.tag", args=[[{"product_id": "s", "image_b64": png}]],
                                          queue="tagger")])
    assert client.fetch([sent])[sent].status.value == "tagged"
    assert len(client.wait([j.job_id for j in good + bad], timeout=60)) == 103

    # a batch's results are in Redis a moment before its report reaches the node's counters
    assert until(lambda: scrape(port).get(("tagger_batch_size_sum", ())) == 104, 10)
    m = scrape(port)
    assert m[("tagger_jobs_total", (("error_code", ""), ("status", "tagged")))] == 101
    assert m[("tagger_jobs_total", (("error_code", "unsupported_format"), ("status", "failed")))] == 2
    assert m[("tagger_jobs_total", (("error_code", "empty_image"), ("status", "failed")))] == 1
    batches = w.control("batching")["batches"]
    assert m[("tagger_batches_total", ())] == batches >= 1
    assert m[("tagger_batch_size_count", ())] == batches and m[("tagger_batch_size_sum", ())] == 104
    for name in ("tagger_queue_wait_seconds", "tagger_latency_seconds"):
        assert m[(f"{name}_count", ())] == m[(f"{name}_bucket", (("le", "+Inf"),))] == 104, name
        assert m[(f"{name}_sum", ())] > 0
    assert m[("tagger_latency_seconds_sum", ())] >= m[("tagger_queue_wait_seconds_sum", ())]
    assert m[("tagger_stage_seconds_total", (("stage", "forward"),))] > 0
    assert m[("tagger_buffered_jobs", ())] == m[("tagger_inflight_jobs", ())] == 0
    assert m[("tagger_worker_ready", ())] == 1 and m[("tagger_pool_processes", ())] == 2
    model = w.control("model")
    info = (("arch", model["arch"]), ("device", "cpu"), ("version", model["model_version"]))
    assert m[("tagger_model_info", info)] == 1
    assert m[("tagger_model_reloads_total", ())] == 0
    # every metric the Grafana dashboard in docs/ queries is one the node serves
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        types = [line.split()[2] for line in response.read().decode().splitlines() if line.startswith("# TYPE")]
    family = lambda name: re.sub(r"_(total|bucket|sum|count)$", "", name)  # noqa: E731
    queried = set(re.findall(r"tagger_[a-z_]+", (ROOT / "docs" / "grafana-dashboard.json").read_text()))
    assert queried and {family(q) for q in queried} <= {family(t) for t in types}, queried
    health = subprocess.run([sys.executable, "-m", "worker.health", "--port", str(port)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert health.returncode == 0 and "ready" in health.stdout
    nobody = subprocess.run([sys.executable, "-m", "worker.health", "--port", str(free_port())], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 1 and "no metrics" in nobody.stdout


def test_queue_depth_in_jobs_for_every_sender_and_a_port_in_use(fleet, test_images) -> None:
    port = free_port()
    w = fleet.worker("w", concurrency=1, metrics_port=port, **FAST).wait_ready()
    client = fleet.client()
    control = Celery(broker=fleet.url)
    control.control.cancel_consumer("tagger", destination=[w.node], reply=True)
    # a BLMOVE already waiting (up to kombu's 1 s poll) would still take the first message, and
    # its restore would change the order that the sampled estimate below depends on
    assert until(lambda: not any("b" in c.get("flags", "") for c in client.redis.client_list()), 10)  # b: blocked
    jobs = jobs_from(test_images, 194, "q")
    client.submit_jobs(jobs[:192], chunk_size=64)  # 3 messages of 64 jobs, with the header
    client.submit_jobs(jobs[192:], chunk_size=1)  # 2 messages of 1
    png = base64.b64encode(test_images[0][0]).decode()
    with sender_app(fleet.url) as sender:  # no header: counted in its body
        sender.send_task("tagger.tag", args=[[{"product_id": f"n{i}", "image_b64": png} for i in range(5)]],
                         queue="tagger", ignore_result=True)
    m = scrape(port)
    assert m[("tagger_queue_jobs", (("queue", "tagger"),))] == 199
    assert m[("tagger_queue_messages", (("queue", "tagger"),))] == 6
    out = subprocess.run([sys.executable, "-m", "producer", "queue", "--jobs"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "REDIS_URL": fleet.url})
    assert json.loads(out.stdout) == {"queue": "tagger", "messages": 6, "jobs": 199, "exact": True}
    from wire.queue_depth import queue_depth

    sampled = queue_depth(client.redis, "tagger", 1024, sample=1)  # the first and the last message only
    assert not sampled.exact and sampled.messages == 6 and sampled.jobs == round((64 + 5) / 2 * 6)

    # a second node on the same host and port: one line in its log, and it works all the same
    other = fleet.worker("other", concurrency=1, metrics_port=port, **FAST).wait_ready()
    control.control.add_consumer("tagger", destination=[w.node], reply=True)
    assert len(client.wait([j.job_id for j in jobs], timeout=60)) == 194
    assert other.tail(20_000).count("metrics not served: port") == 1 and other.alive()
    assert other.control("ping") == {"ok": "pong"}
    control.close()
