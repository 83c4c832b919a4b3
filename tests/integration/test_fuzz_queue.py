"""Fuzz the whole consumer path: a raw item pushed onto the Redis list, to a result or a dead letter.

One real worker node and a real Redis for the whole run. Each input is one item, LPUSHed the
way anyone who can write to Redis could, followed by a good job (the canary). When the canary
has its result, the item has been dealt with (one pool process: batches run in queue order),
and then: the worker is alive, nothing is left in the queue, the inflight list or kombu's
unacked set, and the item either has a dead letter or every job it validly names has its one
final result. Items: random bytes and JSON, Celery envelopes with any field replaced, removed
or nested deep, bodies whose jobs are mutated; the seed corpus is the hostile cases of
test_hostile_queue.py. Budget: tests.fuzzing (TAGGER_FUZZ_SECONDS, TAGGER_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.fuzzing import fuzz
from tests.integration.accounting import FAST, account, until
from wire.envelope import task_envelope
from wire.messages import JOB_ID_PATTERN, Job

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x02\x08\x00\x00\x00\x00W\xdd R\x00\x00\x00"
       b"\x0eIDATx\x9cc\xf8\xff\x1f\x04\x00\x05\xfe\x02\xfe\xa7\xeb\xa5\x98\x00\x00\x00\x00IEND\xaeB`\x82")
TASKS = ["tagger.tag", "no.such.task", "", "celery.accumulate", "celery.chain", "tagger.tag "]
_serial = itertools.count()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def good_job(job_id: str) -> dict[str, Any]:
    return Job.from_bytes(PNG, "p", job_id=job_id).model_dump(mode="json")


@st.composite
def bodies(draw: Any) -> Any:
    """A task body: the tagger's `[[jobs], {}, {}]` with its jobs mutated, or something else."""
    jobs: list[Any] = []
    for _ in range(draw(st.integers(0, 3))):
        job: Any = good_job(f"fz-{uuid.uuid4().hex[:12]}")
        for field in draw(st.lists(st.sampled_from(sorted(job) + ["extra"]), max_size=3)):
            if draw(st.booleans()):
                job.pop(field, None)
            else:
                job[field] = draw(json_values | st.sampled_from([nested(400), "x" * 300, "\x00", "1e400"]))
        jobs.append(draw(st.sampled_from([job, job, json.dumps(job), [job]])))
    shape = draw(st.sampled_from(["tagger", "tagger", "tagger", "junk", "deep", "no kwargs"]))
    if shape == "junk":
        return draw(json_values)
    if shape == "deep":
        return json.loads("[[[" + json.dumps(jobs)[1:-1] + (", " if jobs else "") + nested(200) + "]],{},{}]")
    if shape == "no kwargs":
        return [[jobs]]
    return [[jobs], {}, {}]


@st.composite
def envelopes(draw: Any) -> str:
    """A Celery envelope built the way our client builds it, then changed in a few places."""
    env = json.loads(task_envelope("tagger.tag", "tagger", []))
    body = draw(bodies())
    encode = draw(st.sampled_from(["base64", "base64", "text", "not base64"]))
    raw_body = json.dumps(body)
    env["body"] = {"base64": base64.b64encode(raw_body.encode()).decode(), "text": raw_body,
                   "not base64": "!!" + raw_body[:50]}[encode]
    if isinstance(body, list) and body and isinstance(body[0], list) and body[0] and isinstance(body[0][0], list):
        env["headers"]["tagger_jobs"] = len(body[0][0])
    env["headers"]["task"] = draw(st.sampled_from(TASKS))
    paths = [("headers",), ("headers", "task"), ("headers", "id"), ("headers", "tagger_jobs"),
             ("headers", "redelivered"), ("headers", "eta"), ("headers", "expires"), ("properties",),
             ("properties", "delivery_tag"), ("properties", "delivery_info"),
             ("properties", "delivery_info", "routing_key"), ("properties", "body_encoding"),
             ("properties", "priority"), ("content-type",), ("content-encoding",), ("body",)]
    for path in draw(st.lists(st.sampled_from(paths), max_size=3)):
        parent = env
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            if draw(st.booleans()):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_values | st.sampled_from([nested(300), 1e308, -1, 2**70, "1e400"]))
    text = json.dumps(env)
    if draw(st.booleans()):  # a literal JSON cannot make: an infinite number
        text = re.sub(r'"tagger_jobs": -?\d+', '"tagger_jobs": 1e400', text)
    return text


items = (st.binary(max_size=300) | json_values.map(json.dumps) | envelopes()
         | st.integers(1, 6000).map(nested) | st.text(max_size=200).map(lambda t: t))


def named_job_ids(item: bytes | str) -> list[str]:
    """The job ids an item validly names, read independently of the worker: JSON envelope, base64 body,
    `[[jobs], ...]`, each job a JSON object with a job id of the allowed form."""
    try:
        env = json.loads(item)
        body = json.loads(base64.b64decode(env["body"], validate=True))
        jobs = body[0][0]
    except Exception:  # noqa: BLE001 - anything unreadable names no job
        return []
    if not isinstance(jobs, list):
        return []
    return [j["job_id"] for j in jobs if isinstance(j, dict) and isinstance(j.get("job_id"), str)
            and re.fullmatch(JOB_ID_PATTERN, j["job_id"])]


@pytest.fixture(scope="module")
def node(logs, test_images):
    from devtools.local import Fleet

    with Fleet(logs) as fleet:
        worker = fleet.worker("fuzz", concurrency=1, **{**FAST, "max_batch_wait_ms": 5}).wait_ready()
        yield fleet, worker, fleet.client(), test_images[0][0]


def envelope(**changes: Any) -> str:
    return json.dumps({**json.loads(task_envelope("tagger.tag", "tagger", [])), **changes})


# The hostile cases of test_hostile_queue.py and test_faults.py, first in every run.
SEEDS = [
    envelope(headers={"task": "tagger.tag", "id": "x", "tagger_jobs": 0}).replace('"tagger_jobs": 0',
                                                                                  '"tagger_jobs": 1e400'),
    nested(5000),
    "this is not an envelope",
    "{}",
    b"\xff\xfe not utf-8",
    envelope(body="!!! not base64 !!!"),
    envelope(body=12345),
    envelope(headers={"task": ["a", "list"], "id": "y"}),
    envelope(**{"content-type": "application/x-python-serialize"}),
    task_envelope("no.such.task", "tagger", [good_job("fz-seed-unknown")]),
    task_envelope("tagger.tag", "tagger", [{"job_id": "fz-seed-bad", "product_id": "p"}]),
    envelope(body=base64.b64encode(('[[[{"job_id":"fz-seed-deep","product_id":"p","image_b64":"","metadata":{"x":'
                                    + nested(1000) + '}}]],{},{}]').encode()).decode()),
]


def test_fuzz_raw_queue_items_end_in_a_result_or_a_dead_letter(node) -> None:
    fleet, worker, client, picture = node
    r, queue, stream = client.redis, client.settings.queue, client.settings.dead_letter_stream
    accounted: list[str] = []  # canaries, and the jobs of items that were not moved aside
    tally = {"items": 0, "dead-lettered": 0}

    def one_item(item: bytes | str) -> None:
        assert worker.alive(), worker.tail()
        letters = r.xlen(stream)
        r.lpush(queue, item)
        canary = Job.from_bytes(picture, "canary", job_id=f"canary-{next(_serial)}-{uuid.uuid4().hex[:8]}")
        client.submit_jobs([canary], chunk_size=1)
        assert until(lambda: canary.job_id in client.fetch([canary.job_id]), 30), worker.tail()
        assert until(lambda: r.llen(queue) + r.llen(queue + ":inflight") + r.hlen("unacked") == 0, 10), \
            (r.lrange(queue, 0, -1), r.lrange(queue + ":inflight", 0, -1), r.hgetall("unacked"))
        assert worker.alive(), worker.tail()
        dead_lettered = r.xlen(stream) > letters
        named = named_job_ids(item)
        missing = [j for j in named if j not in client.fetch(named)]
        assert dead_lettered or not missing, (missing, worker.tail(3000))
        accounted.extend([canary.job_id] + ([] if dead_lettered else named))
        tally["items"] += 1
        tally["dead-lettered"] += dead_lettered
        try:
            is_object = isinstance(json.loads(item), dict)
        except (ValueError, UnicodeDecodeError, RecursionError):
            is_object = False
        if not is_object:  # not even a JSON object: it must have been moved aside, with its reason
            assert dead_lettered, worker.tail(3000)

    fuzz(one_item, items, SEEDS, default_seconds=45)
    assert worker.alive() and worker.control("ping") == {"ok": "pong"}
    row = account(f"fuzzed queue items ({tally['items']:,}, {tally['dead-lettered']:,} moved aside)", client,
                  list(dict.fromkeys(accounted)), timeout=30)
    assert row["lost"] == 0 and row["duplicated"] == 0, row
