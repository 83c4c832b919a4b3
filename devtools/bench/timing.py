"""The benchmarks' one timing loop: best of a few fixed-length rounds, by wall clock and by CPU."""

from __future__ import annotations

import time
from typing import Callable, NamedTuple


class Rate(NamedTuple):
    wall: float  # items per wall-clock second: what a caller waits for
    cpu: float  # items per CPU second of the calling thread: the per-core figure on a shared machine


def best_rate(fn: Callable[[], int], seconds: float, repeats: int = 3) -> Rate:
    """Best items/s over `repeats` rounds of `seconds` each; `fn` does some work and returns how
    many items it did. One call first warms caches and lazy set-up; the best round counts, since
    on a shared machine the slower rounds measure the neighbours."""
    fn()
    wall = cpu = 0.0
    for _ in range(repeats):
        done, start, cpu0 = 0, time.perf_counter(), time.thread_time()
        while (elapsed := time.perf_counter() - start) < seconds:
            done += fn()
        wall = max(wall, done / elapsed)
        cpu = max(cpu, done / max(time.thread_time() - cpu0, 1e-9))
    return Rate(wall, cpu)
