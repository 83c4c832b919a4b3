"""Celery task events, per message, as a stock worker sends them: what Flower and exporters read.

A message is a task to Celery's tools: `task-received` when the consumer buffers it,
`task-started` when its batch reaches a pool process, then `task-succeeded` (at least one
of its jobs tagged; the result says how many tagged and failed), `task-failed` (none was),
or `task-revoked` (revoked or expired: not run). They go through the consumer's event
dispatcher, so `-E`, `worker_send_task_events` and `control enable_events`/`disable_events`
switch them as usual; off by default. Nothing here runs while they are off.
"""

from __future__ import annotations

from typing import Any, Iterable


def dispatcher(consumer: Any) -> Any:
    """The consumer's event dispatcher when task events are on, else None (a cheap check per message)."""
    d = getattr(consumer, "event_dispatcher", None)
    if d is None or not d.enabled or (d.groups and "task" not in d.groups):
        return None
    return d


def received(d: Any, message: Any, jobs: int) -> None:
    h = message.headers if isinstance(message.headers, dict) else {}
    d.send("task-received", uuid=h.get("id"), name=h.get("task"), args=h.get("argsrepr"),
           kwargs=h.get("kwargsrepr"), root_id=h.get("root_id"), parent_id=h.get("parent_id"),
           retries=h.get("retries", 0), eta=h.get("eta"), expires=h.get("expires"), jobs=jobs)


def started(d: Any, task_ids: Iterable[str]) -> None:
    for task_id in task_ids:  # the dispatcher adds hostname, pid (the consumer's, as stock Celery's) and clock
        d.send("task-started", uuid=task_id)


def finished(d: Any, outcomes: list[dict[str, Any]], runtime: float) -> None:
    """One event per message of a finished batch, from the pool process's outcomes."""
    for o in outcomes:
        if o["skip"]:
            d.send("task-revoked", uuid=o["id"], terminated=False, signum=None, expired=o["skip"] == "expired")
        elif o["tagged"] or not o["failed"]:
            d.send("task-succeeded", uuid=o["id"], result=summary(o), runtime=runtime)
        else:
            d.send("task-failed", uuid=o["id"], exception=f"JobFailed({o['error']!r})", traceback="",
                   runtime=runtime)


def summary(o: dict[str, Any]) -> str:
    """A task's short result, as Flower shows it."""
    return f"{{'tagged': {o['tagged']}, 'failed': {o['failed']}}}"
