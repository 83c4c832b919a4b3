"""Real service processes for the integration tests: a private Redis and `celery worker`s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from producer.local import ROOT, LocalWorker as Worker

__all__ = ["ROOT", "Worker", "Fleet", "inspect_json"]


def inspect_json(redis_url: str, command: str) -> dict[str, Any]:
    """Run the operator's CLI, `celery -A worker inspect <command> --json`, and parse its output."""
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "inspect", command, "--json", "-t", "5"],
                         cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class Fleet:
    """A private Redis plus workers and clients that talk to it."""

    def __init__(self, log_dir: Path, **redis_options: Any) -> None:
        from producer.redis_server import RedisServer

        self.log_dir = log_dir
        self.redis = RedisServer(**redis_options).start()
        self.workers: list[Worker] = []
        self.clients: list[Any] = []

    @property
    def url(self) -> str:
        return self.redis.url

    def worker(self, name: str, **kwargs: Any) -> Worker:
        w = Worker(self.url, name, self.log_dir, **kwargs)
        self.workers.append(w)
        return w

    def client(self, **overrides: Any) -> Any:
        from producer.client import TaggerClient

        c = TaggerClient(redis_url=self.url, **overrides)
        self.clients.append(c)
        return c

    def close(self) -> None:
        for w in self.workers:
            w.stop(timeout=20)
        for c in self.clients:
            c.close()
        self.redis.close()
