"""Remote-control commands for operators.

    celery -A worker inspect model        # arch, version, checkpoint, accuracy, classes, taxonomy, device, params
    celery -A worker inspect batching     # batches, sizes, tagged/failed, queue wait, images/s
    celery -A worker control reload_model other/model.pt   # under TAGGER_MODELS_DIR
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command, inspect_command


def _batcher() -> Any:
    from worker.consumer.strategy import current

    return current()


@inspect_command()
def model(state: Any) -> dict[str, Any]:
    """The model this worker's processes serve."""
    b = _batcher()
    if b is None:
        return {"error": "no batcher yet (the worker is starting)"}
    return {**b.model, "checkpoint": b.model.get("checkpoint", b.checkpoint), "generation": b.generation,
            "reload_error": b.reload_error, "loaded": bool(b.model)}


@inspect_command()
def batching(state: Any) -> dict[str, Any]:
    """Batching statistics of this worker since it started."""
    b = _batcher()
    return b.summary() if b is not None else {"error": "no batcher yet (the worker is starting)"}


@control_command(args=[("checkpoint", str)], signature="<checkpoint>")
def reload_model(state: Any, checkpoint: str) -> dict[str, Any]:
    """Switch this worker to another checkpoint without a restart; jobs keep flowing."""
    b = _batcher()
    if b is None:
        return {"error": "no batcher yet (the worker is starting)"}
    try:
        path = b.settings.allowed_checkpoint(checkpoint)
    except ValueError as exc:
        return {"error": f"{exc} (on {state.hostname})"}
    b.probe(str(path))
    return {"ok": f"loading {path}; `inspect model` shows the switch (generation {b.generation + 1})"}
