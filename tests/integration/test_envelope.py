"""Our hand-built Celery envelope against the one Celery itself sends through a real Redis."""

from __future__ import annotations

import base64
import json

from wire.envelope import JOBS_HEADER, task_envelope


def test_envelope_matches_what_celery_itself_sends(redis_server) -> None:
    from celery import Celery

    r = redis_server.client()
    r.flushall()
    app = Celery("x", broker=redis_server.url)
    app.conf.task_serializer = "json"
    app.send_task("tagger.tag", args=[[{"k": 1}]], queue="q", headers={JOBS_HEADER: 1}, ignore_result=True)
    theirs = json.loads(r.lpop("q"))
    ours = json.loads(task_envelope("tagger.tag", "q", [{"k": 1}]))
    app.close()
    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert ours["properties"].keys() - {"reply_to"} <= theirs["properties"].keys()
    for key in ("content-type", "content-encoding"):
        assert ours[key] == theirs[key]
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs["body"]))
    assert ours["headers"]["task"] == "tagger.tag" and ours["headers"][JOBS_HEADER] == 1
