"""Benchmark: throughput and latency through the queue, against baselines, side by side in one run.

    python -m devtools.bench            # a few minutes on a 2-core machine
    python -m devtools.bench --quick    # about a minute: smaller runs, same structure

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
6. peak resident memory of the worker processes, and where each image's time goes;
7. photos (devtools.bench.photos): the photo mix by bytes and by URL, 1,000 px JPEGs, Redis
   bytes per queued job, and the cost of `--wait` (CLI time, Redis CPU and commands per job).

Writes bench.json, bench.md and two PNG plots into --out. Needs the `worker` extra (torch)
for the ceiling and the workers; the client side of it imports no torch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from devtools.bench.baselines import run_baseline
from devtools.bench.report import LOADS, machine, markdown, plots
from devtools.bench.service import Service
from devtools.bench.timing import best_rate
from devtools.images import fashion_pngs
from devtools.redis_server import RedisServer
from ml.checkpoint import portable_path

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def ceiling(checkpoint: Path, threads: int, sizes: tuple[int, ...], seconds: float, images: np.ndarray) -> dict[str, Any]:
    """The worker's own inference call (uint8 -> normalise -> forward -> softmax -> top 3), in process."""
    from worker.pool.inference import Classifier

    clf = Classifier(checkpoint, threads=threads)
    rates = {}
    for bs in sizes:
        x = np.ascontiguousarray(np.resize(images, (bs, 28, 28)))
        clf.predict(x)  # warm up
        rates[bs] = round(best_rate(lambda: (clf.predict(x), bs)[1], seconds).wall, 1)
    return {"threads": threads, "arch": clf.checkpoint.arch, "model_version": clf.checkpoint.version,
            "images_per_second": rates}


def preprocessing(pngs: list[bytes], seconds: float) -> dict[str, float]:
    from devtools.bench import preprocess_speed
    from ml.preprocess import preprocess

    blobs = preprocess_speed.inputs()
    out = {"fashion_mnist_png_28": best_rate(lambda: sum(1 for p in pngs[:200] if preprocess(p) is not None), seconds).wall}
    for name, blob in blobs.items():
        if "1000" in name:
            out[name] = best_rate(lambda b=blob: (preprocess(b), 1)[1], seconds).wall
    return {k: round(v, 1) for k, v in out.items()}


# the options a report names in its command line; --data-dir and --redis-url are left out: a path
# of one machine, a URL that may hold a password
_RECORDED = ("quick", "out", "processes", "jobs", "open_loop_seconds", "max_batch_wait_ms", "external_workers",
             "skip_baselines", "against", "photos", "skip_photos", "events", "rounds")


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The command that reran this benchmark: every recorded option that differs from its default."""
    parts = ["python -m devtools.bench"]
    for dest in _RECORDED:
        value, flag = getattr(args, dest), "--" + dest.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif value not in (None, False, parser.get_default(dest)):
            parts.append(f"{flag} {portable_path(value) if isinstance(value, Path) else value}")
    return " ".join(parts)


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
    p.add_argument("--against", default=None, metavar="REV",
                   help="also run the service's closed loop with workers from this git revision (e.g. main), "
                        "alternating with this checkout's, for ratios measured side by side")
    p.add_argument("--photos", type=int, default=None, help="photo-mix images (default 2,000; quick 200)")
    p.add_argument("--skip-photos", action="store_true", help="leave out the photo variants and the wait cost")
    p.add_argument("--events", action="store_true",
                   help="also run the service's closed loop with task events on (-E), beside events off, "
                        "for what events cost")
    p.add_argument("--rounds", type=int, default=1,
                   help="closed-loop runs per variant (best counts; the order reverses every round)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: $FASHION_MNIST_ROOT or data/)")
    args = p.parse_args(argv)
    n = args.jobs or (1000 if args.quick else 10_000)
    seconds = args.open_loop_seconds or (2.0 if args.quick else 8.0)
    args.out.mkdir(parents=True, exist_ok=True)

    from worker.settings import WorkerSettings

    checkpoint = WorkerSettings().checkpoint
    pngs, _labels = fashion_pngs(n, args.data_dir)
    report: dict[str, Any] = {"machine": machine(), "config": {
        "command": command_line(p, args),
        "jobs": n,
        "processes": args.processes, "max_batch_wait_ms": args.max_batch_wait_ms, "checkpoint": portable_path(checkpoint),
        "open_loop_seconds": seconds}}
    print("ceiling: the model alone in process ...", flush=True)
    from ml.preprocess import preprocess

    decoded = np.stack([preprocess(p) for p in pngs[:1024]])
    report["ceiling"] = ceiling(checkpoint, args.processes, BATCH_SIZES[::2] if args.quick else BATCH_SIZES,
                                0.2 if args.quick else 0.5, decoded)
    report["preprocessing"] = preprocessing(pngs, 0.2 if args.quick else 0.5)
    env = {"max_batch_wait_ms": args.max_batch_wait_ms, "stream_maxlen": 1_000_000, "url_allowlist": "127.0.0.1"}
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
        singles = pngs[: max(500, n // 2)]
        folder: Path | None = None
        # Other variants' closed loops, on queues of their own, interleaved with this checkout's so that
        # each ratio is measured side by side (--events: the service with task events on, -E;
        # --against REV: the service's workers from another git revision). With --rounds N each
        # variant runs N times, in an order that reverses every round, and its best run counts:
        # on a shared machine other work only ever slows a run down.
        variants: dict[str, Service] = {}
        if args.events:
            print("the service with task events on ...", flush=True)
            variants["events_on"] = Service(url, logs, args.processes, {**env, "queue": "tagger-events"}, False,
                                            name="bench-events", extra_args=("-E",))
        if args.against:
            from devtools.checkout import export

            folder = export(args.against, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tagger-rev-"))))
            print(f"the service at {args.against} ({folder.name}) ...", flush=True)
            variants["against"] = Service(url, logs, args.processes, {**env, "queue": "tagger-rev"}, False,
                                          root=folder, name="bench-rev")
        for v in variants.values():
            stack.callback(v.close)
        runs = [("service", svc), *variants.items()]
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for r in range(args.rounds):
            for loop, inputs in (("bulk", pngs), ("single", singles)):
                for key, v in (runs if r % 2 == 0 else runs[::-1]):
                    got = v.closed_loop(inputs, bulk=loop == "bulk", label=f"{key}-{loop}-{r}")
                    if got["images_per_second"] > best.get((key, loop), {}).get("images_per_second", -1):
                        best[(key, loop)] = got
        s.update(bulk=best[("service", "bulk")], single=best[("service", "single")])
        for key in variants:
            s[key] = {"bulk": best[(key, "bulk")], "single": best[(key, "single")]}
        for loop in ("bulk", "single"):
            rate = s[loop]["images_per_second"]
            if "events_on" in s:  # events on / events off
                s["events_on"][f"{loop}_ratio"] = round(s["events_on"][loop]["images_per_second"] / rate, 3)
            if "against" in s:  # this checkout / REV
                s["against"][f"{loop}_ratio"] = round(rate / s["against"][loop]["images_per_second"], 3)
        if args.against:
            s["against"].update(rev=args.against, commit=folder.name)
        if svc.worker is not None:
            s["single_drain"] = svc.drain(singles, label="drain")
        peak = s["single"]["images_per_second"]
        print(f"the service: open loop at {', '.join(f'{x:.0%}' for x in LOADS)} of {peak:,.0f}/s ...", flush=True)
        s["open_loop"] = [svc.open_loop(pngs, frac * peak, seconds, label=f"open{int(frac * 100)}") for frac in LOADS]
        s["peak_rss_mb"] = svc.peak_rss()
        report["service"] = s
        if not args.skip_photos and svc.worker is not None:
            from devtools.bench.photos import photos_section
            from ml import data

            items = data.load_split(data.resolve_root(args.data_dir), train=False).images[:1000].numpy()
            report["photos"] = photos_section(url, logs, svc, variants.get("against"), folder, args.processes, items,
                                              args.photos or (200 if args.quick else 2000), pngs,
                                              rounds=1 if args.quick else 3, env=env)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "bench.md").write_text(md)
    plots(report, args.out)
    print("\n" + md)
    print(f"wrote {args.out}/bench.json, bench.md, throughput.png, latency.png")
    return report


if __name__ == "__main__":
    main()
