"""Unit tests of the service's pure parts: batch queue, messages, envelope, settings."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from producer.messages import DecodeError, Job, TagResult
from producer.protocol import JOBS_HEADER, task_envelope
from tests.service import ROOT
from worker.batching import BatchQueue


def test_batch_queue_validates_its_configuration() -> None:
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError):
            BatchQueue(bad, 0.01)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BatchQueue(8, -0.001)
    with pytest.raises(ValueError):
        BatchQueue(8, 0.01).put("x", 0, 0.0)


def test_batch_closes_at_max_size_counting_jobs_not_messages() -> None:
    q: BatchQueue[str] = BatchQueue(max_batch_size=10, max_wait_s=1.0)
    q.put("a", 4, now=0.0)
    q.put("b", 4, now=0.1)
    assert not q.ready(now=0.2)
    q.put("c", 4, now=0.2)  # 12 jobs waiting
    assert q.ready(now=0.2)
    batch = q.take()
    assert [p.item for p in batch] == ["a", "b"] and q.jobs == 4 and len(q) == 1


def test_batch_closes_when_the_oldest_job_has_waited_max_wait() -> None:
    q: BatchQueue[str] = BatchQueue(max_batch_size=100, max_wait_s=0.05)
    assert q.deadline() is None and not q.ready(now=10.0)
    q.put("a", 1, now=1.00)
    q.put("b", 1, now=1.04)
    assert q.deadline() == pytest.approx(1.05)
    assert not q.ready(now=1.049)
    assert q.ready(now=1.05)
    assert [p.item for p in q.take()] == ["a", "b"]
    assert q.deadline() is None


def test_a_message_larger_than_a_batch_goes_alone_and_nothing_is_split() -> None:
    q: BatchQueue[str] = BatchQueue(max_batch_size=8, max_wait_s=0.0)
    q.put("big", 20, now=0.0)
    q.put("small", 1, now=0.0)
    assert [p.item for p in q.take()] == ["big"]
    assert [p.item for p in q.take()] == ["small"]
    assert q.take() == [] and q.jobs == 0


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


def test_job_ids_are_checked_and_images_round_trip() -> None:
    job = Job.from_bytes(b"\x89PNG...", "sku-1", job_id="order-7:line-2")
    assert job.image_bytes() == b"\x89PNG..."
    assert Job.model_validate_json(job.model_dump_json()) == job
    for bad in ("", "has space", "x" * 129, "a/b"):
        with pytest.raises(ValueError):
            Job.from_bytes(b"x", "sku", job_id=bad)
    with pytest.raises(DecodeError):
        Job(product_id="p", image_b64="%%%not base64").image_bytes()
    with pytest.raises(DecodeError):
        TagResult.parse(b"{}")


def test_producer_never_imports_torch() -> None:
    code = ("import sys, producer.client, producer.cli, producer.messages, producer.settings, producer.redis_server;"
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_worker_main_process_never_imports_torch() -> None:
    code = "import sys, worker, worker.consumer, worker.control; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_worker_settings_come_from_the_environment(monkeypatch) -> None:
    from worker.settings import WorkerSettings

    monkeypatch.setenv("REDIS_URL", "rediss://:secret@cache.example:6380/2")
    monkeypatch.setenv("TAGGER_MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("TAGGER_MAX_BATCH_WAIT_MS", "5")
    s = WorkerSettings()
    assert (s.redis_url, s.max_batch_size, s.max_batch_wait_ms) == ("rediss://:secret@cache.example:6380/2", 64, 5.0)
    monkeypatch.setenv("TAGGER_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError):
        WorkerSettings()


def test_the_job_count_of_any_message_is_1_to_cap_and_never_raises() -> None:
    from worker.batching import count_jobs

    body = b'[[[{"job_id":"a","product_id":"p"},{"job_id":"b","product_id":"q \\"product_id\\""}]],{},{}]'
    assert count_jobs({}, body, "n", cap=100) == 2  # counted in the body; an escaped quote is not a key
    assert count_jobs({"n": 7}, body, "n", cap=100) == 7  # the header, when it is a positive integer
    assert count_jobs({"n": 10**12}, body, "n", cap=100) == 100
    for header in (float("inf"), float("nan"), 1e400, -3, 0, "64", [64], None, True):
        assert count_jobs({"n": header}, body, "n", cap=100) == 2, header
    for headers, raw in (([], b"[[[]],{},{}]"), ("x", None), ({}, 12345), ({}, ""), ({}, "[" * 10_000)):
        assert count_jobs(headers, raw, "n", cap=100) == 1


def test_queue_items_decode_to_an_envelope_or_a_reason_whatever_the_bytes() -> None:
    from producer.protocol import task_envelope
    from worker.transport import decode_item

    good = task_envelope("tagger.tag", "tagger", []).encode()
    assert decode_item(good)[1] == "" and decode_item(good)[0]["headers"]["task"] == "tagger.tag"
    assert decode_item(b"[" * 100_000 + b"]" * 100_000)[1].endswith("nested too deep")
    assert decode_item(b"\xff\xfe")[1].startswith("not JSON")
    for item in (b"{}", b"[]", b"12", b'{"body": 1}', b'{"body": "", "properties": [], "headers": {}}'):
        assert decode_item(item) == (None, "not a message envelope"), item


def test_unreadable_bodies_still_name_their_job_ids() -> None:
    from worker.pipeline import job_ids_in, parse_message
    from producer.messages import DecodeError

    body = '[[[{"job_id": "a-1", "metadata": ' + "[" * 2000 + "]" * 2000 + '}, {"job_id":"b:2"}]],{},{}]'
    with pytest.raises(DecodeError, match="RecursionError"):
        parse_message(body)
    assert job_ids_in(body) == ["a-1", "b:2"]
    assert job_ids_in(b'{"job_id": "bad id with spaces"}') == []
