"""What runs in a worker node's pool processes: a batch from its message bodies to published
results (`pipeline`), the process's model (`inference`), results out (`publish`).

The two entry points below are what the consumer process sends to a pool process. They
import the pipeline only when called, in the pool process, so the consumer process never
loads numpy, Pillow or torch.
"""

from __future__ import annotations

from typing import Any


def run_batch(payload: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    from worker.pool.pipeline import run_batch as run

    return run(payload, ctx)


def describe_model(ctx: dict[str, Any]) -> dict[str, Any]:
    from worker.pool.pipeline import describe_model as describe

    return describe(ctx)
