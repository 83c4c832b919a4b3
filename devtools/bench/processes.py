"""Measuring worker processes from outside: CPU seconds, peak memory, and when results arrived."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from devtools.local import LocalWorker
from producer.client import TaggerClient
from wire.keys import result_key


def cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM: psutil gives only the current RSS)."""
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
