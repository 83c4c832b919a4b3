"""worker.pool.parse: a body gives jobs or one DecodeError; job ids are found even in a body that will not parse."""

from __future__ import annotations

import pytest


def test_unreadable_bodies_still_name_their_job_ids() -> None:
    from wire.messages import DecodeError
    from worker.pool.pipeline import job_ids_in, parse_message

    body = '[[[{"job_id": "a-1", "metadata": ' + "[" * 2000 + "]" * 2000 + '}, {"job_id":"b:2"}]],{},{}]'
    with pytest.raises(DecodeError, match="RecursionError"):
        parse_message(body)
    assert job_ids_in(body) == ["a-1", "b:2"]
    assert job_ids_in(b'{"job_id": "bad id with spaces"}') == []
