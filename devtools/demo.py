"""The service end to end on this machine: `make demo` (python -m devtools.demo).

Starts a private Redis (unless REDIS_URL is set), a worker with the default model,
submits the sample product images through the client, prints their tags and a
summary, then stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from devtools.local import LocalWorker
from devtools.redis_server import RedisServer
from ml.constants import CLASSES
from producer.client import TaggerClient
from wire.formats import IMAGE_SUFFIXES
from worker.settings import REPO_ROOT

SAMPLES = REPO_ROOT / "samples"


def true_label(path: Path) -> str | None:
    """Sample files are named NNNN_<class-slug>.<ext>."""
    slug = path.stem.split("_", 1)[-1]
    return next((c for c in CLASSES if c.lower().replace("/", "-").replace(" ", "-") == slug), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--samples", type=Path, default=SAMPLES, help="folder of images to tag (searched recursively)")
    p.add_argument("--repeat", type=int, default=100, help="submit the samples this many times for the throughput line")
    p.add_argument("--concurrency", type=int, default=2, help="worker pool processes")
    args = p.parse_args(argv)

    files = sorted(f for f in args.samples.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    with ExitStack() as stack:
        url = os.environ.get("REDIS_URL")
        if not url:
            server = stack.enter_context(RedisServer())
            url = server.url
            print(f"started a private Redis at {url}")
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tagger-demo-")))
        worker = LocalWorker(url, f"demo-{os.getpid()}", logs, concurrency=args.concurrency, loglevel="WARNING")
        stack.callback(worker.stop)
        print(f"starting a worker ({args.concurrency} processes, default model) ...", flush=True)
        worker.wait_ready()
        client = stack.enter_context(TaggerClient(redis_url=url))

        handles = client.submit_many([(f, f.name) for f in files])
        results = client.wait([h.job_id for h in handles], timeout=60)
        print(f"\n{'product':<28} {'tag':<12} {'conf.':>6}  {'category':<10} {'colours':<24} review  true")
        correct = known = 0
        for h, f in zip(handles, files):
            r = results[h.job_id]
            truth = true_label(f)
            if r.status.value == "tagged":
                known += truth is not None
                correct += truth == r.label
                mark = "" if truth is None else ("ok" if truth == r.label else f"({truth})")
                colours = ", ".join(f"{c.name} {c.share:.0%}" for c in r.colours) or "-"
                print(f"{r.product_id:<28} {r.label:<12} {r.confidence:>6.1%}  {r.category or '-':<10} {colours:<24} "
                      f"{'yes' if r.needs_review else 'no':<6}  {mark}")
            else:
                print(f"{r.product_id:<28} FAILED {r.error_code.value if r.error_code else ''}: {r.error}")

        bulk = [(f.read_bytes(), f"{f.name}#{i}") for i in range(args.repeat) for f in files]
        t0 = time.perf_counter()
        many = client.submit_many(bulk)
        done = client.wait([h.job_id for h in many], timeout=300)
        seconds = time.perf_counter() - t0
        sizes = [r.timings.batch_size for r in done.values()]
        print(f"\n{len(files)} samples: {correct}/{known} tags match the true label ({correct / max(known, 1):.0%}).")
        print(f"throughput: {len(bulk):,} images submitted in one call, all tagged in {seconds:.2f} s = "
              f"{len(bulk) / seconds:,.0f} images/s end to end; mean batch size {sum(sizes) / len(sizes):.1f}.")
        print("stopping the worker" + ("" if os.environ.get("REDIS_URL") else " and Redis"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
