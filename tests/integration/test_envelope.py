"""Our hand-built Celery envelope against the one Celery itself sends through a real Redis."""

from __future__ import annotations

import base64
import json

from wire.envelope import JOBS_HEADER, task_envelope
from wire.messages import Job


def test_envelope_matches_what_celery_itself_sends_but_base64s_nothing(redis_server) -> None:
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
    # Celery base64s its body; ours is the JSON text itself, so an image is base64'd once
    assert theirs["properties"]["body_encoding"] == "base64" and "body_encoding" not in ours["properties"]
    assert json.loads(ours["body"]) == json.loads(base64.b64decode(theirs["body"]))
    assert ours["headers"]["task"] == "tagger.tag" and ours["headers"][JOBS_HEADER] == 1


def test_a_worker_tags_our_messages_and_celerys_own_base64_ones(worker, client, test_images) -> None:
    """Other senders keep working (kombu decodes a body by the body_encoding its envelope names), and
    so do other readers: Celery's AsyncResult.get."""
    import threading

    from celery import Celery

    ours = [Job.from_bytes(png, f"ours-{i}") for i, (png, _) in enumerate(test_images[:5])]
    theirs = [Job.from_bytes(png, f"theirs-{i}") for i, (png, _) in enumerate(test_images[5:10])]
    # Celery's own AsyncResult.get, subscribed before the result exists: the worker publishes to
    # channels that have a subscriber
    celery_got: list = []
    listening = threading.Thread(target=lambda: celery_got.append(
        client.celery.AsyncResult(ours[0].job_id).get(timeout=60)))
    listening.start()
    client.submit_jobs(ours)
    app = Celery("backend", broker=client.settings.redis_url)
    app.conf.task_serializer = "json"
    app.send_task("tagger.tag", args=[[j.model_dump(mode="json", exclude_none=True) for j in theirs]],
                  queue=client.settings.queue, ignore_result=True)  # no job-count header either
    app.close()
    results = client.wait([j.job_id for j in ours + theirs], timeout=60)
    assert {r.status.value for r in results.values()} == {"tagged"} and len(results) == 10
    listening.join()
    assert celery_got == [results[ours[0].job_id].model_dump(mode="json")]
