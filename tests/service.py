"""Real service processes for the integration tests: a private Redis and `celery worker`s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """One `celery -A worker worker` node in its own process group."""

    def __init__(self, redis_url: str, name: str, log_dir: Path, concurrency: int = 2, pool: str = "prefork",
                 **settings: Any) -> None:
        self.name = name
        self.node = f"{name}@test"
        self.redis_url = redis_url
        self.log = log_dir / f"{name}.log"
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        env.update({f"TAGGER_{k.upper()}": str(v) for k, v in settings.items()})
        cmd = [sys.executable, "-m", "celery", "-A", "worker", "worker", "-n", self.node, "-c", str(concurrency),
               "-P", pool, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"]
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> "Worker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.tail()}")
            if f"{self.node} ready." in self.log.read_text(errors="replace"):
                # ready is logged before the pool processes finish loading the model
                if self.control("model").get("loaded"):
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready after {timeout} s: {self.tail()}")

    def control(self, command: str, timeout: float = 5.0, **arguments: Any) -> dict[str, Any]:
        """Ask this node a remote-control command; {} if it did not answer."""
        app = Celery(broker=self.redis_url)
        try:
            replies = app.control.broadcast(command, arguments=arguments, destination=[self.node], reply=True,
                                            timeout=timeout)
        finally:
            app.close()
        for reply in replies:
            if self.node in reply:
                return reply[self.node]
        return {}

    def pool_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftover pool processes, if any
        except ProcessLookupError:
            pass
        self._log_file.close()
        return int(self.proc.returncode)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


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
