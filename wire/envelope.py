"""Celery task messages (protocol 2, JSON) in the Redis transport's envelope, built by hand.

Why by hand: `apply_async` costs ~2 ms per message and sends one network round trip
each; building the envelope ourselves lets `submit_many` push thousands of messages in
one Redis pipeline. The format is Celery's documented message protocol v2 inside
kombu's Redis envelope; tests/integration/test_envelope.py checks it against what Celery itself
sends, and every integration test has a real worker consume it.

One difference: Celery base64s the JSON body (`body_encoding: base64`), so an image already
base64'd in its job is base64'd twice, 1.9 bytes of Redis per image byte. Our body is the JSON text
itself, with no body_encoding: kombu decodes a body only when the envelope names an encoding, so
the worker reads ours as it is and other senders' base64 bodies as before.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Any

JOBS_HEADER = "tagger_jobs"  # lets the worker count jobs without decoding the body
JOB_KEY = b'"product_id"'  # every job has one; counted in a body that has no job-count header
MIN_JOB_BYTES = 32  # no job fits in fewer bytes of JSON: {"product_id":"p","image_b64":"A"}
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_BODY_TAIL = "]]," + json.dumps([{}, _EMBED], separators=(",", ":"))[1:]  # `]],{},{embed}]`
BODY_OVERHEAD = len("[[[") + len(_BODY_TAIL)  # a body's bytes besides its jobs and the commas between them


def task_envelope(task_name: str, queue: str, jobs: list[dict[str, Any]]) -> str:
    """One message carrying `jobs` to task `task_name`, ready to LPUSH onto list `queue`."""
    return jobs_envelope(task_name, queue, [json.dumps(j, separators=(",", ":")) for j in jobs])


def jobs_envelope(task_name: str, queue: str, jobs_json: list[str]) -> str:
    """The same, from jobs already serialized to JSON (the client serializes each job once)."""
    message_id = str(uuid.uuid4())
    body = "[[[" + ",".join(jobs_json) + _BODY_TAIL
    headers = {
        "lang": "py",
        "task": task_name,
        "id": message_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": message_id,
        "parent_id": None,
        "argsrepr": f"<{len(jobs_json)} jobs>",
        "kwargsrepr": "{}",
        "origin": _ORIGIN,
        "ignore_result": True,  # results are stored per job, under the job id
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        JOBS_HEADER: len(jobs_json),
    }
    envelope = {
        "body": body,  # the JSON text itself: no body_encoding, so no second base64
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": message_id,
            "reply_to": None,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope, separators=(",", ":"))


def count_jobs(headers: Any, body: Any, header: str, cap: int) -> int:
    """How many jobs a message holds: from its header, else counted in its (decoded) body.

    For batching in the worker and for the queue's depth in jobs. Never raises and always
    gives 1..cap, whatever the message: a sender's header may be anything JSON allows (1e400,
    a string, a list), and no header may claim more jobs than the body has room for (a
    300-byte message saying 1e12 once starved the prefetch). Counting the key in the raw body
    is a C-speed substring search (no JSON decode, no image decode); a JSON string value
    cannot contain the quoted key unescaped, so it counts jobs (and, at worst, a metadata key
    of that name too: an overcount only makes a batch smaller).
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return 1
    room = max(1, min(len(body) // MIN_JOB_BYTES, cap))
    value = headers.get(header) if isinstance(headers, dict) else None
    if type(value) is int and value >= 1:
        return min(value, room)
    return max(1, min(bytes(body).count(JOB_KEY), room))
