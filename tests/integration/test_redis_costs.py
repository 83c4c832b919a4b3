"""What jobs cost Redis: memory per queued job (INFO memory), and commands per wait (INFO commandstats)."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from devtools.bench.photos import UNCONSUMED, queued_bytes
from devtools.images import photo_mix
from producer.client import IDLE_CHECK_S, TaggerClient
from producer.errors import ResultTimeout
from wire.messages import Job


def queued_bytes_per_job(redis_url: str, submit, n: int) -> float:
    """Redis memory per job of the `n` that `submit(client)` queues where nobody consumes, its client closed."""
    from redis import Redis

    def run() -> None:
        with TaggerClient(redis_url=redis_url, queue=UNCONSUMED) as client:
            submit(client)

    probe = Redis.from_url(redis_url)
    try:
        return queued_bytes(probe, run, n)
    finally:
        probe.close()


def celery_style(envelope: str) -> str:
    """The same message as Celery's own envelope carries it: the body base64'd again."""
    message = json.loads(envelope)
    message["body"] = base64.b64encode(message["body"].encode()).decode()
    message["properties"]["body_encoding"] = "base64"
    return json.dumps(message, separators=(",", ":"))


@pytest.fixture(scope="module")
def photos(dataset) -> list[bytes]:
    return [b for b, _ in photo_mix(dataset.test.images.numpy(), 256)]


def test_a_queued_bytes_job_costs_at_most_1_6x_its_file_and_a_url_job_under_1_kb(redis_url, photos) -> None:
    mean_file = sum(map(len, photos)) / len(photos)
    jobs = [Job.from_bytes(p, f"sku-{i}") for i, p in enumerate(photos)]

    def base64_twice(client) -> None:  # what main sent: checks that the bound can fail
        from wire.envelope import jobs_envelope

        texts = [j.wire_json() for j in jobs]
        for i in range(0, len(texts), 64):
            client.redis.lpush(UNCONSUMED, celery_style(jobs_envelope("tagger.tag", UNCONSUMED, texts[i:i + 64])))

    ratio = queued_bytes_per_job(redis_url, lambda client: client.submit_jobs(jobs), len(jobs)) / mean_file
    old = queued_bytes_per_job(redis_url, base64_twice, len(jobs)) / mean_file
    assert ratio <= 1.6, ratio
    assert old > 1.6, old  # the bound fails for two base64 layers
    urls = [(f"https://cdn.example.com/catalogue/2024/{i:06d}/front.jpg", f"sku-{i}") for i in range(2_000)]
    assert queued_bytes_per_job(redis_url, lambda client: client.submit_many(urls), len(urls)) < 1024


def calls(r, *commands: str) -> dict[str, int]:
    stats = r.info("commandstats")
    return {c: int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in commands}


def test_waiting_costs_redis_per_result_not_per_poll(worker, client, test_images) -> None:
    probe = client.redis
    watched = ("mget", "xread")  # server-wide counts: the worker sends neither
    # 1. nothing arrives: a 6 s wait makes a handful of calls (a polling wait made about 60 MGETs)
    never = [Job.from_bytes(test_images[0][0], "never").job_id for _ in range(500)]
    before = calls(probe, *watched)
    with pytest.raises(ResultTimeout):
        client.wait(never, timeout=6)
    idle = {c: n - before[c] for c, n in calls(probe, *watched).items()}
    assert idle["xread"] <= 6 / IDLE_CHECK_S + 1 and idle["mget"] <= 6 / IDLE_CHECK_S + 2, idle

    # 2. results arrive while it waits: calls follow the batches delivered, not the time spent
    jobs = [Job.from_bytes(png, f"sku-{i}") for i, (png, _) in enumerate(test_images[:400])]
    got: dict = {}
    before, batches = calls(probe, *watched), worker.control("batching")["batches"]
    waiting = threading.Thread(target=lambda: got.update(client.wait([j.job_id for j in jobs], timeout=60)))
    waiting.start()
    time.sleep(1.0)
    client.submit_jobs(jobs, chunk_size=4)
    waiting.join()
    busy = {c: n - before[c] for c, n in calls(probe, *watched).items()}
    batches = worker.control("batching")["batches"] - batches
    assert len(got) == 400
    assert busy["mget"] <= 2 and busy["xread"] <= batches + 2, (busy, batches)
    # and a result from before the wait began is still found (one MGET), as is one job by its handle
    assert client.wait([jobs[0].job_id], timeout=1)[jobs[0].job_id] == got[jobs[0].job_id]
