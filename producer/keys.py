"""Redis key names that producer and worker share."""

RESULT_KEY_PREFIX = "celery-task-meta-"  # Celery's Redis result backend layout: AsyncResult(job_id) finds it


def result_key(job_id: str) -> str:
    return RESULT_KEY_PREFIX + job_id


def attempts_key(job_id: str) -> str:
    return f"tagger:attempts:{job_id}"
