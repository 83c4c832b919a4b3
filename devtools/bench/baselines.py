"""Baselines for the benchmark only, not part of the service.

    celery -A devtools.bench.baselines:naive worker      # one task per image, no batching
    celery -A devtools.bench.baselines:cbatches worker   # celery-batches (flush 256 / 50 ms)

Both load the same checkpoint once per pool process with the service's own classifier
(worker.pool.inference) and preprocessing, so the benchmark compares delivery and batching, not models.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

_state: dict[str, Any] = {}


def _app(name: str, prefetch_multiplier: int) -> Celery:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    app = Celery(name, broker=url, backend=url)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                    result_accept_content=["json"], task_default_queue=f"bench-{name}",
                    worker_prefetch_multiplier=prefetch_multiplier, worker_proc_alive_timeout=60.0,
                    result_expires=3600,
                    # stock kombu, as a plain Celery deployment has it: importing `worker` (for the
                    # classifier) maps redis:// to the service's own transport in this process
                    broker_transport="kombu.transport.redis:Transport")
    return app


@worker_process_init.connect
def _load(**_: object) -> None:
    from celery import current_app

    this = current_app._get_current_object()
    from worker.pool.inference import Classifier
    from worker.settings import WorkerSettings

    this.set_current()  # importing `worker` built the service's app, which made itself the current one
    _state["clf"] = Classifier(WorkerSettings().checkpoint, threads=1)  # as the service serves it


def classify(images: list[bytes]) -> list[dict[str, Any]]:
    """Preprocess each image and classify them in one forward pass (the service's own call)."""
    import numpy as np

    from ml.preprocess import preprocess

    clf = _state["clf"]
    pred = clf.predict(np.stack([preprocess(b) for b in images]), k=1)
    return [{"label": clf.classes[i], "label_id": i, "confidence": c}
            for i, c in zip(pred.top_ids[:, 0].tolist(), pred.top_scores[:, 0].tolist())]


naive = _app("naive", prefetch_multiplier=4)  # Celery's default


@naive.task(name="naive.tag")
def naive_tag(image_b64: str, product_id: str) -> dict[str, Any]:
    return {"product_id": product_id, **classify([base64.b64decode(image_b64)])[0]}


cbatches = _app("cbatches", prefetch_multiplier=256)  # prefetch must allow a full batch to form

try:
    from celery_batches import Batches
except ImportError:  # pragma: no cover - optional: `pip install celery-batches`
    Batches = None

if Batches is not None:

    @cbatches.task(name="cbatches.tag", base=Batches, flush_every=256, flush_interval=0.05)
    def cbatches_tag(requests: list[Any]) -> None:
        results = classify([base64.b64decode(r.args[0]) for r in requests])
        for r, result in zip(requests, results):
            cbatches.backend.mark_as_done(r.id, {"product_id": r.args[1], **result}, request=r)


def run_baseline(name: str, url: str, logs: Path, pngs: list[bytes], processes: int, env: dict[str, str]) -> dict[str, Any]:
    """End to end with delay() per job, then draining a pre-filled queue."""
    from devtools.bench.processes import node_peak_rss_mb, wait_keys
    from devtools.local import LocalWorker
    from producer.client import TaggerClient

    app = globals()[name]
    app.conf.broker_url = app.conf.result_backend = url
    task = app.tasks[f"{name}.tag"]
    queue = f"bench-{name}"
    worker = LocalWorker(url, f"bench-{name}", logs, concurrency=processes, loglevel="WARNING",
                         app=f"devtools.bench.baselines:{name}", **env).wait_ready(require_model=False)
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
