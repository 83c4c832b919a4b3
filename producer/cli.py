"""Command line for backends and operators.

    python -m producer submit IMAGES... [--wait]      # files or http(s) URLs; one JSON line per job (per result with --wait)
    python -m producer results [--follow] [--group G]  # the results stream, one JSON line per result
    python -m producer dead-letters [--replay [ID...]] # jobs that exhausted their attempts
    python -m producer queue [--jobs]                 # messages (and jobs) waiting
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import redis

from producer.client import MIN_MAX_SIDE, TaggerClient, read_image
from producer.errors import QueueFull, RedisFull, ResultTimeout
from producer.settings import ClientSettings
from wire.errors import JobTooLarge
from wire.formats import SNIFF_BYTES, sniff_format
from wire.messages import Status
from wire.urls import looks_like_url, parse_image_url


class CliError(Exception):
    pass


def _read_images(names: Sequence[str], max_bytes: int) -> list[tuple[str, bytes] | str]:
    """(file name, bytes) for each file, read once, and each URL as it is. A file that is missing,
    not an image or over the byte limit, or a URL that can never be fetched, stops the command
    before anything is sent: the worker would only fail it later."""
    checked: list[tuple[str, bytes] | str] = []
    for name in names:
        if looks_like_url(name):
            try:
                parse_image_url(name)
            except ValueError as exc:
                raise CliError(f"{name}: {exc}") from None
            checked.append(name)
            continue
        try:
            data = read_image(name, max_bytes)
        except (FileNotFoundError, NotADirectoryError):
            raise CliError(f"{name}: no such file") from None
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from None
        if sniff_format(data[:SNIFF_BYTES]) is None:
            raise CliError(f"{name}: not a PNG, JPEG or WebP image")
        checked.append((os.path.basename(name), data))
    return checked


def cmd_submit(client: TaggerClient, args: argparse.Namespace) -> int:
    if args.max_side is not None:
        try:
            import PIL  # noqa: F401 - the shrink is the client's one optional feature
        except ImportError:
            raise CliError("--max-side needs Pillow: pip install 'fashion-tagger[shrink]'") from None
        if args.max_side < MIN_MAX_SIDE:
            raise CliError(f"--max-side {args.max_side}: at least {MIN_MAX_SIDE} pixels")
    images = _read_images(args.images, client.settings.max_image_bytes)
    jobs = [client.job(i[1], product_id=i[0], max_side=args.max_side) if isinstance(i, tuple) else client.job(url=i)
            for i in images]
    del images  # the jobs hold the images now (base64): don't keep both
    try:
        handles = client.submit_jobs(jobs, chunk_size=args.chunk_size)
    except RedisFull as exc:  # say which jobs were queued before Redis filled up, then exit 6
        for job in jobs[:len(exc.enqueued)]:
            print(json.dumps({"job_id": job.job_id, "product_id": job.product_id, "status": "queued"}), flush=True)
        raise
    if not args.wait:
        sys.stdout.writelines(json.dumps({"job_id": h.job_id, "product_id": h.product_id, "status": "queued"}) + "\n"
                              for h in handles)
        sys.stdout.flush()
        return 0
    return print_in_order(client, [h.job_id for h in handles], args.timeout)


def print_in_order(client: TaggerClient, job_ids: list[str], timeout: float) -> int:
    """Each result as a JSON line, in the jobs' order, printed as soon as those before it are
    (results come roughly in that order): the output flows while the workers run. 1 if any failed.
    On a timeout, the results that came are printed before ResultTimeout (exit 5) says which did not."""
    index = {job_id: i for i, job_id in enumerate(job_ids)}
    lines: list[str | None] = [None] * len(job_ids)
    printed = failed = 0
    out = sys.stdout
    try:
        for batch in client.result_batches(job_ids, timeout=timeout):
            for r in batch:
                lines[index[r.job_id]] = r.model_dump_json()
                failed += r.status is Status.FAILED
            while printed < len(lines) and (line := lines[printed]) is not None:
                out.write(line + "\n")
                lines[printed] = None
                printed += 1
            out.flush()
    except ResultTimeout:
        out.writelines(line + "\n" for line in lines if line is not None)
        out.flush()
        raise
    return 1 if failed else 0


def cmd_results(client: TaggerClient, args: argparse.Namespace) -> int:
    for r in client.results(follow=args.follow, from_start=not args.new, group=args.group, consumer=args.consumer):
        print(r.model_dump_json(), flush=True)
    return 0


def cmd_dead_letters(client: TaggerClient, args: argparse.Namespace) -> int:
    if args.replay is not None:
        handles = client.replay_dead_letters(args.replay or None)
        for h in handles:
            print(json.dumps({"job_id": h.job_id, "product_id": h.product_id, "status": "requeued"}), flush=True)
        return 0
    for d in client.dead_letters(count=args.count):
        line = {"entry_id": d.entry_id, "kind": "job" if d.job else "message", "reason": d.reason,
                "attempts": d.attempts, "failed_at": d.failed_at}
        if d.job is not None:
            line.update(job_id=d.job.job_id, product_id=d.job.product_id)
        else:
            line["raw"] = (d.raw or "")[:200]
        print(json.dumps(line), flush=True)
    return 0


def cmd_queue(client: TaggerClient, args: argparse.Namespace) -> int:
    if not args.jobs:
        print(json.dumps({"queue": client.settings.queue, "messages": client.queue_length()}))
        return 0
    depth = client.queue_depth()
    print(json.dumps({"queue": client.settings.queue, "messages": depth.messages, "jobs": depth.jobs,
                      "exact": depth.exact}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m producer", description="Submit product images and read their tags.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--redis-url", default=None, help="Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379/0)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="enqueue images; product ids are the file names",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("images", nargs="+", help="PNG, JPEG or WebP files, or http(s) URLs the workers fetch")
    s.add_argument("--wait", action="store_true", help="wait and print each result as a JSON line")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for all results with --wait")
    s.add_argument("--chunk-size", type=int, default=None, help="jobs per message (default: $TAGGER_CHUNK_SIZE or 64)")
    s.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="shrink larger files to this long side before sending (needs Pillow; 512 keeps the tags)")
    s.set_defaults(func=cmd_submit)

    r = sub.add_parser("results", help="print results from the results stream",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--follow", "-f", action="store_true", help="keep waiting for new results")
    r.add_argument("--new", action="store_true", help="only results that arrive from now on")
    r.add_argument("--group", default=None, help="read as this consumer group (each result to one member, acknowledged)")
    r.add_argument("--consumer", default="cli", help="consumer name within --group")
    r.set_defaults(func=cmd_results)

    d = sub.add_parser("dead-letters", help="list (or replay) jobs that exhausted their attempts",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--count", type=int, default=100, help="how many to list")
    d.add_argument("--replay", nargs="*", metavar="ENTRY_ID", default=None,
                   help="submit these dead letters again (all of them when no id is given)")
    d.set_defaults(func=cmd_dead_letters)

    q = sub.add_parser("queue", help="how many messages (and, with --jobs, jobs) wait in the queue")
    q.add_argument("--jobs", action="store_true",
                   help="also count the jobs they hold (exact; in a deep queue, estimated from both ends)")
    q.set_defaults(func=cmd_queue)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = ClientSettings(**({"redis_url": args.redis_url} if args.redis_url else {}))
    try:
        with TaggerClient(settings) as client:
            return int(args.func(client, args))
    except (CliError, JobTooLarge) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.exceptions.ConnectionError as exc:
        print(f"error: cannot reach Redis at {_redact(settings.redis_url)}: {exc}", file=sys.stderr)
        return 3
    except QueueFull as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except ResultTimeout as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 5
    except RedisFull as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 6
    except KeyboardInterrupt:
        return 130


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
