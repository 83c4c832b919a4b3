"""worker.pool.publish: what Celery's own result reader makes of the results we store."""

from __future__ import annotations

import json

from celery import Celery
from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import TaskRevokedError

from wire.errors import ErrorCode, JobFailed
from worker.pool.publish import backend_meta, message_value
from worker.pool.results import failure


def test_a_standard_senders_message_result_reads_as_celery_reads_it() -> None:
    """worker.pool.publish: SUCCESS with the list when a job was tagged; FAILURE when none was, or
    when the body could not be read; REVOKED when not run; one job: that job's own state."""
    backend = KeyValueStoreBackend(app=Celery())  # Celery's own reader of stored results

    def read(state_value: tuple[str, str]) -> tuple[str, object]:
        meta = backend.meta_from_decoded(json.loads(backend_meta(*state_value, "t", '"d"')))
        return meta["status"], meta["result"]

    bad = failure("j1", "p", ErrorCode.EMPTY_IMAGE, "no bytes", 0.0, 1, None)
    worse = failure("j2", "p", ErrorCode.DECODE_ERROR, "truncated", 0.0, 1, None)
    state, exc = read(message_value([bad]))
    assert state == "FAILURE" and isinstance(exc, JobFailed) and exc.args == ("empty_image", "no bytes")
    state, exc = read(message_value([bad, worse]))
    assert state == "FAILURE" and exc.args == ("empty_image", "none of its 2 jobs was tagged")
    assert read(message_value([]))[0] == "SUCCESS"
    state, exc = read(message_value([], unreadable="not a tagger message: JSONDecodeError"))
    assert state == "FAILURE" and exc.args[0] == "invalid_message"
    state, exc = read(message_value([failure("j3", "p", ErrorCode.REVOKED, "x", 0.0, 1, None)] * 2, skip="revoked"))
    assert state == "REVOKED" and isinstance(exc, TaskRevokedError) and exc.args == ("revoked",)

