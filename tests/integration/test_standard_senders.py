"""Tasks sent the standard way, without our client: Celery's send_task and `celery call`, against real workers.

Each gets its result under its task id, where AsyncResult (and other languages' Celery
clients) look; failed jobs read as FAILURE, revoked and expired ones as REVOKED, and our
client still reads each job's TagResult with its error code.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery
from celery.exceptions import TaskRevokedError

from tests.integration.accounting import until
from tests.integration.senders import sender_app
from wire.errors import ErrorCode, JobFailed
from wire.messages import Status, TagResult
from worker.settings import REPO_ROOT as ROOT


@pytest.fixture
def sender(redis_url):
    with sender_app(redis_url) as app:
        yield app


def job(png: bytes, product: str, **extra: object) -> dict:
    return {"product_id": product, "image_b64": base64.b64encode(png).decode(), **extra}


def send(app: Celery, *args: object, **options: object):
    return app.send_task("tagger.tag", args=args or None, queue="tagger", **options)


def test_send_task_gets_its_result_under_the_task_id_in_every_shape(worker, sender, client, test_images) -> None:
    png = [p for p, _ in test_images[:8]]
    one = send(sender, [job(png[0], "one")])
    single = send(sender, job(png[1], "single-object"))  # one job, not in a list
    many = send(sender, [job(png[2], "m0"), job(png[3], "m1", job_id="chosen-id"), job(png[4], "m2")])
    keyword = sender.send_task("tagger.tag", kwargs={"jobs": [job(png[5], "k0"), job(png[6], "k1")]}, queue="tagger")
    keyword_one = sender.send_task("tagger.tag", kwargs={"jobs": job(png[7], "k-one")}, queue="tagger")

    for r, product in ((one, "one"), (single, "single-object"), (keyword_one, "k-one")):
        value = r.get(timeout=30)
        assert r.successful() and value["status"] == "tagged" and value["product_id"] == product
        assert value["job_id"] == r.id  # a job without a job id takes the task id
        assert client.fetch([r.id])[r.id] == TagResult.parse(value)  # and our client reads it as a job
    listed = many.get(timeout=30)
    assert [x["product_id"] for x in listed] == ["m0", "m1", "m2"] and {x["status"] for x in listed} == {"tagged"}
    assert [x["job_id"] for x in listed] == [f"{many.id}-0", "chosen-id", f"{many.id}-2"]
    assert client.fetch(["chosen-id"])["chosen-id"].product_id == "m1"  # each job under its own id too
    assert [x["product_id"] for x in keyword.get(timeout=30)] == ["k0", "k1"]


def test_a_failed_job_is_failure_to_celery_and_a_tag_result_to_our_client(worker, sender, client, test_images) -> None:
    bad = send(sender, [job(b"not an image at all", "broken")])
    assert bad.get(timeout=30, propagate=False) is not None
    assert bad.failed() and bad.state == "FAILURE"
    exc = bad.result
    assert isinstance(exc, JobFailed) and exc.args[0] == ErrorCode.UNSUPPORTED_FORMAT.value, repr(exc)
    with pytest.raises(JobFailed, match="unsupported_format"):
        bad.get(timeout=5)
    mine = client.fetch([bad.id])[bad.id]
    assert mine.status is Status.FAILED and mine.error_code is ErrorCode.UNSUPPORTED_FORMAT and mine.error
    assert client.get(bad.id, timeout=5) == mine  # our handle's get() reads the same key

    mixed = send(sender, [job(test_images[0][0], "fine"), job(b"", "empty")])
    statuses = [(x["status"], x.get("error_code")) for x in mixed.get(timeout=30)]
    assert statuses == [("tagged", None), ("failed", "empty_image")] and mixed.state == "SUCCESS"
    all_bad = send(sender, [job(b"", "e1"), job(b"xx", "e2")])
    all_bad.get(timeout=30, propagate=False)
    assert all_bad.failed() and isinstance(all_bad.result, JobFailed) and all_bad.result.args[0] == "empty_image"


def test_revoked_and_expired_tasks_do_not_run_and_each_job_still_gets_a_final_result(worker, sender, client,
                                                                                     test_images) -> None:
    png = test_images[0][0]
    revoked_id = str(uuid.uuid4())
    sender.control.revoke(revoked_id)  # before it is sent: the worker keeps the revoked id
    revoked = send(sender, [job(png, "r0"), job(png, "r1")], task_id=revoked_id)
    past = datetime.now(timezone.utc) - timedelta(seconds=30)
    expired = send(sender, [job(png, "x0", job_id="expired-job")], expires=past)
    fine = send(sender, [job(png, "after")])
    assert fine.get(timeout=30)["status"] == "tagged"

    for r, code in ((revoked, "revoked"), (expired, "expired")):
        with pytest.raises(TaskRevokedError, match=code):
            r.get(timeout=30)
        assert r.state == "REVOKED"
    assert {client.fetch([j])[j].error_code for j in (f"{revoked_id}-0", f"{revoked_id}-1")} == {ErrorCode.REVOKED}
    x = client.fetch(["expired-job"])["expired-job"]
    assert x.status is Status.FAILED and x.error_code is ErrorCode.EXPIRED and x.label is None
    assert worker.control("ping") == {"ok": "pong"}


def test_celery_call_from_the_command_line(worker, redis_url, sender, test_images) -> None:
    args = json.dumps([[job(test_images[2][0], "from-the-cli")]])
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "call", "tagger.tag", "--args", args,
                          "--queue", "tagger"], cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip().splitlines()[-1]
    value = sender.AsyncResult(task_id).get(timeout=30)
    assert value["product_id"] == "from-the-cli" and value["status"] == "tagged" and value["job_id"] == task_id


def test_messages_without_the_job_count_header_keep_every_batch_within_the_limit(worker, sender,
                                                                                test_images) -> None:
    """40 messages of 64 jobs, as any sender sends them (no tagger_jobs header): batches of 256 at most."""
    limit = 256  # the shared worker's TAGGER_MAX_BATCH_SIZE (the default)
    before = worker.control("batching")
    pngs = [p for p, _ in test_images]
    sent = [send(sender, [job(pngs[(m * 64 + i) % len(pngs)], f"h{m}-{i}") for i in range(64)]) for m in range(40)]
    results = [x for r in sent for x in r.get(timeout=120)]
    assert len(results) == 2560 and {x["status"] for x in results} == {"tagged"}
    sizes = [x["timings"]["batch_size"] for x in results]
    assert 64 < max(sizes) <= limit, max(sizes)  # messages are merged into batches, none over the limit
    # a batch's results are in Redis a moment before its report reaches the consumer's totals
    assert until(lambda: worker.control("batching")["jobs"] - before["jobs"] == 2560, 10)
    after = worker.control("batching")
    assert after["max_batch_size"] <= limit and after["jobs"] - before["jobs"] == 2560


def test_a_job_id_that_another_task_holds_in_the_backend_reads_as_failed_not_as_an_error(worker, sender, client,
                                                                                          test_images) -> None:
    """Job ids and task ids share the result backend's keys (the fuzz test met one: an unknown
    task's NotRegistered error stored under an id a later job used). The job reads as failed,
    and the fetch of the other jobs goes on."""
    from wire.keys import result_key

    shared = f"shared-{uuid.uuid4().hex[:8]}"
    sender.send_task("no.such.task", args=[], queue="tagger", task_id=shared)  # the worker stores NotRegistered
    assert until(lambda: client.redis.exists(result_key(shared)), 30)
    client.redis.set(result_key(f"{shared}-junk"), b"\xff not json", ex=60)  # another application's value
    handles = client.submit_many([(test_images[0][0], "mine")])
    client.submit_jobs([client.job(test_images[1][0], "clash", job_id=shared)], chunk_size=1)
    client.wait([h.job_id for h in handles], timeout=30)
    got = client.fetch([shared, f"{shared}-junk", handles[0].job_id, "nobody"])
    assert set(got) == {shared, f"{shared}-junk", handles[0].job_id}
    assert got[handles[0].job_id].status is Status.TAGGED
    for key, what in ((shared, "NotRegistered"), (f"{shared}-junk", "not a tagger result")):
        assert got[key].status is Status.FAILED and got[key].error_code is ErrorCode.INVALID_JOB, got[key]
        assert what in got[key].error and "job ids must be unique" in got[key].error

