"""Nothing on the queue can stop the fleet: hostile items pushed straight onto the Redis list.

Each item here stopped a worker node on the earlier main (and, left in Redis, every
replacement too), or looped forever in its pool. Now each is moved aside to the
dead-letter stream with its reason, the jobs it names get a final result where they
can be read, and the good jobs around it are tagged.
"""

from __future__ import annotations

import base64
import json
import time

from tests.integration.accounting import FAST, account, jobs_from
from wire.envelope import task_envelope
from wire.errors import ErrorCode
from wire.messages import Job


def envelope(jobs: list[dict], base64_body: bool = False, **changes: object) -> dict:
    """Our envelope, changed; with `base64_body`, its body declared base64 as Celery's own are."""
    env = json.loads(task_envelope("tagger.tag", "tagger", jobs))
    env.update(changes)
    if base64_body:
        env["properties"]["body_encoding"] = "base64"
    return env


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_hostile_queue_items_are_moved_aside_and_never_stop_a_worker(fleet, test_images) -> None:
    w = fleet.worker("w", concurrency=1, **FAST).wait_ready()
    client = fleet.client()
    r, queue = client.redis, client.settings.queue
    png = base64.b64encode(test_images[0][0]).decode()

    infinite_header = json.dumps(envelope([]), separators=(",", ":")).replace('"tagger_jobs":0', '"tagger_jobs":1e400')
    assert "1e400" in infinite_header
    bad_base64 = envelope([], base64_body=True, body="!!! not base64 !!!")
    number_body = envelope([], base64_body=True, body=12345)  # kombu's base64 decode raises TypeError
    list_body = envelope([], body=[{"a": 1}])  # no encoding: kombu hands the list over as the body
    unroutable = envelope([])
    unroutable["headers"]["task"] = ["a", "list"]  # Celery looks it up in a dict: unhashable
    deep_item = nested(5000)
    # a valid envelope whose job metadata is nested 1,000 deep: json.loads raises RecursionError
    deep_body = ('[[[{"job_id":"deep-1","product_id":"p","image_b64":"' + png + '","enqueued_at":1.0,'
                 '"metadata":{"x":' + nested(1000) + '}}]],{},{}]')
    deep_message = envelope([], base64_body=True, body=base64.b64encode(deep_body.encode()).decode())
    deep_message["headers"]["tagger_jobs"] = 1

    before = jobs_from(test_images, 40, "before")
    after = jobs_from(test_images, 40, "after")
    client.submit_jobs(before, chunk_size=1)
    for raw in (infinite_header, json.dumps(bad_base64), json.dumps(number_body), json.dumps(list_body),
                json.dumps(unroutable), deep_item, json.dumps(deep_message)):
        r.lpush(queue, raw)
    client.submit_jobs(after, chunk_size=1)

    row = account("hostile queue items (7 kinds)", client, [j.job_id for j in before + after] + ["deep-1"])
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["tagged"] == 80 and row["failed"] == 1, row
    assert client.fetch(["deep-1"])["deep-1"].error_code is ErrorCode.INVALID_MESSAGE
    assert w.alive() and w.control("ping") == {"ok": "pong"}

    letters = client.dead_letters()
    assert all(d.job is None and d.raw for d in letters), letters
    reasons = " | ".join(d.reason for d in letters)
    for expected in ("JSON nested too deep", "cannot be delivered: Error", "cannot be delivered: TypeError",
                     "a body of type list", "not a task message: no task header", "not a tagger message: RecursionError"):
        assert expected in reasons, reasons
    # the infinite header is not an error: that message is counted from its body (0 jobs -> 1) and
    # runs as an empty message; every other item has its own dead letter
    assert len(letters) == 6, reasons
    assert r.llen(queue) == 0 and r.llen(f"{queue}:inflight") == 0 and r.hlen("unacked") == 0

    stats = w.control("batching")
    assert sum(stats["quarantined"].values()) >= 5 and stats["invalid_messages"] == 1, stats
    more = jobs_from(test_images, 10, "later")
    client.submit_jobs(more, chunk_size=1)
    assert len(client.wait([j.job_id for j in more], timeout=30)) == 10


def test_a_message_that_kills_its_process_before_parsing_is_dead_lettered(fleet, test_images) -> None:
    """Message-level poison: its jobs are never counted, so the message's deliveries are."""
    w = fleet.worker("w", concurrency=1, max_attempts=3, TEST_CRASH_MESSAGE_MARKER="kill-this-message",
                     **FAST).wait_ready()
    client = fleet.client()
    good = jobs_from(test_images, 100, "ok")
    poison = [Job.from_bytes(test_images[i][0], "kill-this-message", job_id=f"doomed-{i}") for i in range(3)]
    client.submit_jobs(good[:50], chunk_size=1)
    client.submit_jobs(poison, chunk_size=3)
    client.submit_jobs(good[50:], chunk_size=1)
    ids = [j.job_id for j in good + poison]
    row = account("message that kills its process before parsing", client, ids, timeout=120)
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["tagged"] == 100 and row["failed"] == 3, row
    for r in client.fetch([j.job_id for j in poison]).values():
        assert r.error_code is ErrorCode.TOO_MANY_ATTEMPTS and r.attempts == 3, r
    letters = client.dead_letters()
    assert len(letters) == 1 and letters[0].job is None and "message-level poison" in letters[0].reason
    assert "doomed-0" in (letters[0].raw or "")
    deadline = time.monotonic() + 30
    while w.control("batching").get("dead_lettered_messages") != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    stats = w.control("batching")
    assert stats["dead_lettered_messages"] == 1, stats


def test_costs_are_bounded_per_message_and_per_job(fleet, test_images) -> None:
    """Issue 11, finding 4: a message's jobs, a job's metadata and echoed ids cost a bounded amount."""
    fleet.worker("w", concurrency=1, max_batch_size=256, **FAST).wait_ready()
    client = fleet.client()
    r, queue = client.redis, client.settings.queue
    png = base64.b64encode(test_images[0][0]).decode()

    def job(job_id: str, **extra: object) -> dict:
        return {"job_id": job_id, "product_id": "p", "image_b64": png, "enqueued_at": time.time(), **extra}

    too_many = [job(f"many-{i}") for i in range(1_500)]  # over TAGGER_MAX_JOBS_PER_MESSAGE (1,024)
    r.lpush(queue, task_envelope("tagger.tag", queue, too_many))
    big = [job(f"big-{i}") for i in range(600)]  # under the cap, over max_batch_size: several forward passes
    r.lpush(queue, task_envelope("tagger.tag", queue, big))
    r.lpush(queue, task_envelope("tagger.tag", queue, [
        job("fat-metadata", metadata={"blob": "x" * 1_000_000}),
        job("long-id", product_id="p" * 10_000)]))
    liar = json.loads(task_envelope("tagger.tag", queue, [job("liar")]))
    liar["headers"]["tagger_jobs"] = 10**12  # once starved the prefetch
    r.lpush(queue, json.dumps(liar))

    ids = [j["job_id"] for j in too_many + big] + ["fat-metadata", "long-id", "liar"]
    row = account("messages and jobs over the bounds", client, ids, timeout=180)
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["tagged"] == 601 and row["failed"] == 1_502, row
    results = client.fetch(ids)
    assert {results[j["job_id"]].error_code for j in too_many} == {ErrorCode.INVALID_MESSAGE}
    assert "holds 1,500 jobs; the limit is 1,024" in results["many-0"].error
    assert max(results[j["job_id"]].timings.batch_size for j in big) <= 256
    assert "metadata is 1,000,011 bytes of JSON; the limit is 4,096" in results["fat-metadata"].error
    assert len(results["fat-metadata"].model_dump_json()) < 2_000  # nothing of the megabyte echoed back
    assert results["long-id"].error_code is ErrorCode.INVALID_JOB and len(results["long-id"].product_id) == 256
    assert results["liar"].label is not None
