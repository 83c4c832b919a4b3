"""worker.pool.parse: a body gives jobs or one DecodeError; job ids are found even in a body that will not parse;
any Celery sender's shape of `tag(jobs)` is read."""

from __future__ import annotations

import json

import pytest

from wire.errors import ErrorCode


def test_unreadable_bodies_still_name_their_job_ids() -> None:
    from wire.messages import DecodeError
    from worker.pool.pipeline import job_ids_in, parse_message

    body = '[[[{"job_id": "a-1", "metadata": ' + "[" * 2000 + "]" * 2000 + '}, {"job_id":"b:2"}]],{},{}]'
    with pytest.raises(DecodeError, match="RecursionError"):
        parse_message(body)
    assert job_ids_in(body) == ["a-1", "b:2"]
    assert job_ids_in(b'{"job_id": "bad id with spaces"}') == []


def test_jobs_as_a_list_one_job_or_a_keyword_and_ids_from_the_task_id() -> None:
    from worker.pool.parse import parse_message

    job = {"product_id": "p", "image_b64": "iVBORw0KGgo="}
    for body in ([[[job]], {}, {}], [[job], {}, {}], [[], {"jobs": [job]}, {}], [[], {"jobs": job}, {}]):
        jobs, failed, ids = parse_message(json.dumps(body), task_id="task-1")
        assert [j.job_id for j in jobs] == ids == ["task-1"] and failed == [], body
    two = [[[job, {**job, "job_id": "mine"}, {"job_id": "bad id", "product_id": "p"}, 7]], {}, {}]
    jobs, failed, ids = parse_message(json.dumps(two), task_id="task-2")
    assert [j.job_id for j in jobs] == ["task-2-0", "mine"] and ids == ["task-2-0", "mine", "task-2-2", "task-2-3"]
    assert [(f.job_id, f.error_code) for f in failed] == [("task-2-2", ErrorCode.INVALID_JOB),
                                                          ("task-2-3", ErrorCode.INVALID_JOB)]
    for bad in ([[], {}, {}], [["x"], {}, {}], [[], {"jobs": 3}, {}], {"a": 1}):
        with pytest.raises(ValueError, match="not a tagger message"):
            parse_message(json.dumps(bad), task_id="t")

