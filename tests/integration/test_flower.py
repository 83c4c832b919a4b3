"""Flower, as an operator runs it (`celery -A worker flower`), against real workers with task events on.

Its task list, task states and Prometheus counters match what was sent, by our client and
by plain send_task; its broker view reads the queue (the broker URL is a plain redis:// URL).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from devtools.redis_server import free_port
from tests.integration.accounting import FAST, jobs_from
from tests.integration.senders import sender_app, settle
from worker.settings import REPO_ROOT as ROOT


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def start_flower(url: str, port: int, log) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": url, "FLOWER_UNAUTHENTICATED_API": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker", "flower", f"--port={port}",
                             "--address=127.0.0.1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get(port, "/healthcheck")
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise TimeoutError("Flower did not start")


def events_by_type(port: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(get(port, "/metrics")):
        for s in family.samples:
            if s.name == "flower_events_total" and s.labels.get("task") == "tagger.tag":
                counts[s.labels["type"]] += int(s.value)
    return counts


def test_flower_sees_every_message_with_its_state(fleet, test_images, logs) -> None:
    w = fleet.worker("w", concurrency=2, extra_args=("-E",), **FAST).wait_ready()
    port = free_port()
    with (logs / "flower.log").open("ab") as log:
        flower = start_flower(fleet.url, port, log)
    try:
        time.sleep(2)  # Flower's event receiver connects
        client = fleet.client()
        ours = jobs_from(test_images, 20, "fl")
        client.submit_jobs(ours, chunk_size=4)  # 5 messages, by our client
        with sender_app(fleet.url) as sender:
            png = base64.b64encode(test_images[0][0]).decode()
            revoked_id = str(uuid.uuid4())
            sender.control.revoke(revoked_id)
            bodies = [[{"product_id": "g0", "image_b64": png}], [{"product_id": "g1", "image_b64": png}],
                      [{"product_id": "b", "image_b64": "AAAA"}], [{"product_id": "r", "image_b64": png}]]
            good, _, bad, _ = settle([sender.send_task("tagger.tag", args=[b], queue="tagger",
                                                       task_id=revoked_id if i == 3 else None)
                                      for i, b in enumerate(bodies)])
        assert len(client.wait([j.job_id for j in ours], timeout=60)) == 20

        want = {"task-received": 9, "task-started": 8, "task-succeeded": 7, "task-failed": 1, "task-revoked": 1}
        deadline = time.monotonic() + 30
        while (seen := events_by_type(port)) != want and time.monotonic() < deadline:
            time.sleep(0.5)
        assert seen == want

        tasks: dict[str, Any] = json.loads(get(port, "/api/tasks"))
        states = Counter(t["state"] for t in tasks.values())
        assert states == {"SUCCESS": 7, "FAILURE": 1, "REVOKED": 1}, states
        assert {t["name"] for t in tasks.values()} == {"tagger.tag"} and {t["worker"] for t in tasks.values()} == {w.node}
        assert tasks[bad]["state"] == "FAILURE" and "unsupported_format" in tasks[bad]["exception"]
        assert tasks[good]["result"] == "{'tagged': 1, 'failed': 0}" and tasks[good]["runtime"] > 0
        ours_done = [t for t in tasks.values() if t["args"] == "<4 jobs>"]
        assert len(ours_done) == 5 and all(t["result"] == "{'tagged': 4, 'failed': 0}" for t in ours_done)
        queues = json.loads(get(port, "/api/queues/length"))
        assert {"name": "tagger", "messages": 0} in queues["active_queues"], queues
    finally:
        flower.terminate()
        flower.wait(timeout=30)
