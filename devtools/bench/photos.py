"""Catalogue photos through the service, and what the broker pays per job (part of `python -m devtools.bench`).

1. Photos end to end (closed loop, `submit_jobs`, 2 pool processes): the photo mix
   (devtools.images.photo_mix: JPEG 80%, transparent PNG 10%, WebP 10%, 200-1,200 px a side)
   by bytes and by URL, the URLs served by devtools.image_server in its own process; JPEG-only
   photos of 1,000 px (q85-90) by bytes. With --against REV, REV's workers run the bytes variants
   in the same run.
2. Redis bytes per queued job (INFO memory before and after, the submitting client closed, a
   queue nobody consumes): photo bytes jobs with this checkout's client and with REV's (as a
   subprocess from its own checkout), and URL jobs.
3. The cost of waiting: `python -m producer submit <PNGs> --wait` on 28x28 PNGs, end to end,
   with this checkout's CLI and workers and with REV's (each a subprocess of its own checkout,
   the workers on the seed model), each checkout on a private Redis of its own, measuring the
   CLI's wall time, Redis CPU per job (INFO cpu: everything the broker did for the run, the
   workers' commands and the wait included) and Redis commands per job (INFO commandstats),
   best of a few alternating rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from devtools.bench.service import Service
from devtools.images import jpeg_photos, photo_mix
from devtools.local import LocalWorker
from devtools.redis_server import RedisServer, free_port
from producer.client import TaggerClient
from worker.settings import REPO_ROOT

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
UNCONSUMED = "tagger-unconsumed"  # a queue no worker reads: what queued jobs cost while they wait
SUBMIT_FOLDER = ("import sys, pathlib\nfrom producer.client import TaggerClient\n"
                 "files = sorted(pathlib.Path(sys.argv[1]).iterdir())\n"
                 "with TaggerClient() as c:\n    c.submit_many([(f.read_bytes(), f.name) for f in files])\n")


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def redis_cpu_s(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def command_calls(r: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in r.info("commandstats").items()}


def run_client(root: Path, args: list[str], redis_url: str, queue: str, timeout: float = 900) -> float:
    """A client command from checkout `root`, as a subprocess; its wall time in seconds."""
    env = {**os.environ, "REDIS_URL": redis_url, "TAGGER_QUEUE": queue,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL, timeout=timeout)
    return time.perf_counter() - t0


def queued_bytes(r: redis.Redis, submit: Any, n: int) -> float:
    """Redis memory per job that `submit()` leaves queued on UNCONSUMED (its client closed before measuring)."""
    r.delete(UNCONSUMED)
    time.sleep(0.1)
    before = int(r.info("memory")["used_memory"])
    submit()
    time.sleep(0.2)
    per_job = (int(r.info("memory")["used_memory"]) - before) / n
    r.delete(UNCONSUMED)
    return round(per_job, 1)


def photo_loops(svc: Service, rev: Service | None, photos: list[bytes], urls: list[str],
                jpegs: list[bytes], plain: Service | None = None, rounds: int = 3) -> dict[str, Any]:
    """Closed loops: this checkout by bytes and by URL, REV by bytes, interleaved; `plain`: this
    checkout with colour naming off, on the photo mix and the JPEGs, alternating with this
    checkout's loops (`*_colours_on`) for `rounds` rounds, the best of each counting (a loop is a
    few seconds: one run alone is at the mercy of the neighbours). This checkout and REV alternate
    the same way on the bytes variants, after a warm-up loop each, and their ratios are of the bests."""
    out: dict[str, Any] = {}
    nodes = [("", svc)] + ([("rev_", rev)] if rev is not None else [])
    for node in (svc, rev, plain):
        if node is not None:
            node.closed_loop(photos[:200], bulk=True, label="pwarm")  # its first batches pay the start-up
    for key, inputs in (("mix_bytes", photos), ("jpeg_bytes", jpegs)):
        for r in range(rounds):
            for prefix, node in (nodes if r % 2 == 0 else nodes[::-1]):
                got = node.closed_loop(inputs, bulk=True, label=f"{prefix}{key}{r}")
                if got["images_per_second"] > out.get(f"{prefix}{key}", {}).get("images_per_second", -1):
                    out[f"{prefix}{key}"] = got
    if plain is not None:
        for key, inputs in (("mix_bytes", photos), ("jpeg_bytes", jpegs)):
            for r in range(rounds):
                pair = [("_colours_on", svc), ("_no_colours", plain)]
                for suffix, node in (pair if r % 2 else pair[::-1]):
                    got = node.closed_loop(inputs, bulk=True, label=f"c{r}{suffix}{key}")
                    if got["images_per_second"] > out.get(f"{key}{suffix}", {}).get("images_per_second", -1):
                        out[f"{key}{suffix}"] = got
            # what naming colours costs, as a share of the whole path
            off, on = out[f"{key}_no_colours"]["images_per_second"], out[f"{key}_colours_on"]["images_per_second"]
            out[f"{key}_colour_cost"] = round(1 - on / off, 3)
    out["mix_urls"] = svc.closed_loop(urls, bulk=True, label="purls")  # type: ignore[arg-type]
    if rev is not None:
        for key in ("mix_bytes", "jpeg_bytes"):
            out[f"{key}_ratio"] = round(out[key]["images_per_second"] / out[f"rev_{key}"]["images_per_second"], 3)
    return out


def wait_cost(logs: Path, processes: int, pngs_folder: Path, roots: dict[str, Path], rounds: int) -> dict[str, Any]:
    """`python -m producer submit <all PNGs> --wait` per checkout, against that checkout's workers (seed model).

    Each checkout gets a private Redis with nothing but its own node and its CLI connected, so
    that the broker's CPU is the run's alone: in the bench's main Redis, after every other variant
    and beside their idle nodes, the same code measured 31-34 µs per job against 17-22 alone
    (docs/benchmark.md). On a shared machine one run can take twice as long as the next, so each checkout
    runs `rounds` times, the order alternating, and each figure is its best round.
    """
    files = [str(p) for p in sorted(pngs_folder.iterdir())]
    n = len(files)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in roots}
    brokers: dict[str, str] = {}
    with ExitStack() as stack:
        for name, root in roots.items():
            brokers[name] = stack.enter_context(RedisServer()).url
            node = LocalWorker(brokers[name], f"bench-wait-{name}", logs, concurrency=processes, loglevel="WARNING",
                               root=root, queue=f"tagger-wait-{name}", checkpoint=root / "models" / "seed" / "model.pt")
            stack.callback(node.stop)
            node.wait_ready()
        for i in range(rounds):
            for name, root in (list(roots.items()) if i % 2 == 0 else list(roots.items())[::-1]):
                r = redis.Redis.from_url(brokers[name])
                cpu0, calls0 = redis_cpu_s(r), command_calls(r)
                seconds = run_client(root, ["-m", "producer", "submit", *files, "--wait", "--timeout", "600"],
                                     brokers[name], f"tagger-wait-{name}")
                cpu, calls = redis_cpu_s(r) - cpu0, command_calls(r)
                r.close()
                delta = {k: v - calls0.get(k, 0) for k, v in calls.items() if v > calls0.get(k, 0)}
                runs[name].append({"seconds": seconds, "cpu_us": 1e6 * cpu / n, "commands": sum(delta.values()) / n,
                                   "wait_commands": {k: delta.get(k, 0) for k in ("mget", "xread", "xrevrange")}})
    out: dict[str, Any] = {"rounds": rounds, "private_redis": True}
    for name, rs in runs.items():
        best = min(x["seconds"] for x in rs)
        out[name] = {"jobs": n, "cli_seconds": round(best, 2), "images_per_second": round(n / best, 1),
                     "cli_seconds_all": [round(x["seconds"], 2) for x in rs],
                     "redis_cpu_us_per_job": round(min(x["cpu_us"] for x in rs), 1),
                     "redis_cpu_us_per_job_all": [round(x["cpu_us"], 1) for x in rs],
                     "redis_commands_per_job": round(min(x["commands"] for x in rs), 2),
                     "wait_commands": rs[-1]["wait_commands"]}
    if len(runs) == 2:
        this, other = (out[name] for name in runs)
        out["cli_speedup"] = round(other["cli_seconds"] / this["cli_seconds"], 3)
        out["redis_cpu_ratio"] = round(other["redis_cpu_us_per_job"] / this["redis_cpu_us_per_job"], 3)
    return out


def photos_section(url: str, logs: Path, svc: Service, rev: Service | None, rev_root: Path | None,
                   processes: int, items: Any, n_photos: int, pngs: list[bytes], rounds: int = 3,
                   env: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything above; `items`: Fashion-MNIST images to render, `pngs`: the 28x28 PNGs for the wait;
    `env`: the service's settings, for a node of this checkout with colour naming off."""
    with ExitStack() as stack:
        plain = None
        if env is not None:
            plain = Service(url, logs, processes, {**env, "queue": "tagger-no-colours", "colours": False}, False,
                            name="bench-no-colours")
            stack.callback(plain.close)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tagger-photos-")))
        mix = photo_mix(items, n_photos)
        jpegs = jpeg_photos(items, max(100, n_photos // 2))
        folder = write_files(tmp / "photos", {f"p{i:05d}.{EXTENSIONS[fmt]}": b for i, (b, fmt) in enumerate(mix)})
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "devtools.image_server", str(folder), "--port", str(port)],
                                  cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        stack.callback(server.wait)
        stack.callback(server.kill)
        server.stdout.readline()  # type: ignore[union-attr]  # "serving ...": it is listening
        urls = [f"http://127.0.0.1:{port}/files/{p.name}" for p in sorted(folder.iterdir())]
        photos = [p.read_bytes() for p in sorted(folder.iterdir())]
        sizes = sorted(map(len, photos))
        out: dict[str, Any] = {"photos": len(photos), "mean_file_bytes": round(sum(sizes) / len(sizes)), "rounds": rounds,
                               "jpeg_photos": len(jpegs), "jpeg_mean_file_bytes": round(sum(map(len, jpegs)) / len(jpegs))}
        print(f"photos: {len(photos)} photo-like images (mean {out['mean_file_bytes']:,} bytes), by bytes and by URL ...",
              flush=True)
        out["end_to_end"] = photo_loops(svc, rev, photos, urls, jpegs, plain, rounds)

        print("photos: Redis bytes per queued job ...", flush=True)
        r = redis.Redis.from_url(url)
        client_roots = {"this": REPO_ROOT, **({"rev": rev_root} if rev_root else {})}
        memory = {f"bytes_job_{name}": queued_bytes(r, lambda root=root: run_client(
            root, ["-c", SUBMIT_FOLDER, str(folder)], url, UNCONSUMED), len(photos)) for name, root in client_roots.items()}
        with TaggerClient(redis_url=url, queue=UNCONSUMED) as client:
            jobs = [client.job(url=u) for u in urls]
        memory["url_job_this"] = queued_bytes(r, lambda: _submit_closed(url, jobs), len(jobs))
        r.close()
        for key in list(memory):
            if key.startswith("bytes_job"):
                memory[key.replace("bytes_job", "per_file_byte")] = round(memory[key] / out["mean_file_bytes"], 3)
        out["redis_bytes_per_queued_job"] = memory

        print(f"the wait: python -m producer submit {len(pngs):,} PNGs --wait ...", flush=True)
        pngs_folder = write_files(tmp / "pngs", {f"i{i:05d}.png": b for i, b in enumerate(pngs)})
        out["wait"] = wait_cost(logs, processes, pngs_folder, client_roots, rounds)
    return out


def _submit_closed(url: str, jobs: list[Any]) -> None:
    with TaggerClient(redis_url=url, queue=UNCONSUMED) as client:
        client.submit_jobs(jobs)
