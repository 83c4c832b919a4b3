"""The one task the producer sends: `tagger.tag(jobs)`, run in batches by worker.consumer.strategy."""

from __future__ import annotations

from typing import Any

from worker.app import app, settings


@app.task(name=settings.task_name, Strategy="worker.consumer.strategy:batching_strategy", settings=settings,
          acks_late=True, ignore_result=True)
def tag(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Only for a direct call (`tag.apply(...)`): workers batch messages through the strategy instead."""
    import json

    from worker.pool.pipeline import run_batch

    return run_batch({"bodies": [json.dumps([[jobs], {}, {}])]},
                     {"checkpoint": str(settings.checkpoint), "generation": 0, "hostname": "direct"})
