"""Redis key names that producer and worker share."""

RESULT_KEY_PREFIX = "celery-task-meta-"  # Celery's Redis result backend layout: AsyncResult(job_id) finds it


def result_key(job_id: str) -> str:
    return RESULT_KEY_PREFIX + job_id


def attempts_key(job_id: str) -> str:
    return f"tagger:attempts:{job_id}"


def message_attempts_key(message_id: str) -> str:
    """Redeliveries of one message (by its task id), counted only once Redis delivers it again."""
    return f"tagger:attempts:msg:{message_id}"
