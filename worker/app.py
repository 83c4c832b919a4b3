"""The Celery app: `celery -A worker worker` runs it, `celery -A worker inspect ...` talks to it."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutting_down

from worker.consumer.memory_policy import MemoryPolicyCheck
from worker.consumer.transport import register as register_transport
from worker.settings import WorkerSettings

settings = WorkerSettings()

# redis://, rediss:// and sentinel:// mean kombu's Redis transports, hardened against junk (behind
# Sentinel: the same channel, on Sentinel's pool), and the URLs stay plain for every tool
register_transport()
register_transport(("sentinel",), "worker.consumer.sentinel:SentinelTransport")
app = Celery("tagger", broker=settings.redis_url, backend=settings.redis_url)
redis_options = settings.celery_options()  # Sentinel's master name, for sentinel:// URLs
app.conf.update(
    # JSON only, in and out: nothing is ever unpickled.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_default_queue=settings.queue,
    # At-least-once: acknowledge after the results are published; requeue when a
    # pool process dies; redeliver what a lost worker held after the visibility timeout.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout_s,
        "unacked_restore_interval": settings.restore_interval_s,
        "unacked_restore_throttle": 1,
        # kombu holds this mutex (a key with a TTL) while it sweeps for messages to restore; a sweep
        # cut short by a Redis restart left it for kombu's default 300 s, with no restores meanwhile
        # (the AOF keeps the key). A sweep takes milliseconds, and restoring a tag is one script that
        # puts it back only once (worker.consumer.transport), so two sweeps at once do no harm: 3 intervals is plenty.
        "unacked_mutex_expire": 3 * settings.restore_interval_s,
        "priority_steps": [0],  # one Redis list per queue: what worker.consumer.transport makes reliable
        "reliable_queue": settings.queue,  # the task queue only: replies and broadcasts stay kombu's
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        # where worker.consumer.transport moves items it cannot deliver, and messages rejected without requeue
        "dead_letter_stream": settings.dead_letter_stream,
        "dead_letter_maxlen": settings.dead_letter_maxlen,
        **redis_options.get("broker_transport_options", {}),
    },
    result_backend_transport_options={"retry_policy": {"timeout": 10.0},
                                      **redis_options.get("result_backend_transport_options", {})},
    # The batcher sets the real prefetch (counted in jobs) once messages flow; this
    # is only the start value, large enough for full batches of single-job messages.
    worker_prefetch_multiplier=2 * settings.max_batch_size,
    result_expires=settings.result_ttl_s,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # keep reconnecting (with backoff) while Redis is down
    # Redis errors while the consumer (re)starts, such as a full Redis refusing kombu's queue
    # declaration, restart the consumer (with backoff) instead of stopping the node.
    broker_channel_error_retry=True,
    # Importing torch and loading the model in a fresh pool process can take longer
    # than Celery's default 4 s on a busy machine.
    worker_proc_alive_timeout=60.0,
    worker_send_task_events=False,
    task_send_sent_event=False,
)
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
# Only the tagger's task runs here. Celery's built-in ones (celery.chain, celery.accumulate, ...)
# would run whatever a message pushed onto the queue asks of them, and its jobs would get no
# result; unregistered, such a message is refused like any unknown task, into the dead letters.
for _name in [name for name in app.tasks if name != settings.task_name]:
    app.tasks.unregister(_name)
app.steps["consumer"].add(MemoryPolicyCheck)  # refuse a Redis whose memory policy may evict queued jobs

import worker.control  # noqa: E402,F401  (registers `inspect model`, `inspect batching`, `control reload_model`)


@worker_process_init.connect
def _load_model(**_: object) -> None:
    """Once per pool process, after the fork: set torch threads and load the model."""
    from worker.pool.pipeline import warm_up

    warm_up()


@worker_ready.connect
def _describe_model(**_: object) -> None:
    from worker.consumer.metrics import serve
    from worker.consumer.strategy import current

    if (b := current()) is not None:
        b.probe()
    serve(settings)  # after the pool processes forked: they do not inherit the listening socket


@worker_shutting_down.connect
def _stop_batching(**_: object) -> None:
    # Warm shutdown: in-flight batches finish and are acknowledged; messages still
    # buffered are not started and go back to the queue when the channel closes.
    from worker.consumer.strategy import current

    if (b := current()) is not None:
        b.closing = True
