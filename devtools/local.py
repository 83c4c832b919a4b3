"""Run the service on this machine: worker processes next to an embedded Redis.

Used by the demo, the benchmark and the tests. Starting a worker is a subprocess
(`python -m celery -A worker worker`), so this module itself never imports torch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from devtools.redis_server import RedisServer
from producer.client import TaggerClient
from wire.settings import ServiceSettings
from worker.settings import REPO_ROOT as ROOT


class LocalWorker:
    """One `celery -A worker worker` node in its own process group."""

    def __init__(self, redis_url: str, name: str, log_dir: Path, concurrency: int = 2, pool: str = "prefork",
                 loglevel: str = "INFO", extra_args: tuple[str, ...] = (), app: str = "worker", root: Path = ROOT,
                 **settings: Any) -> None:
        """`root`: the checkout whose code the node runs (another revision: devtools.checkout)."""
        self.name = name
        self.node = f"{name}@{os.uname().nodename}"
        self.redis_url = redis_url
        self.log = log_dir / f"{name}.log"
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        settings.setdefault("metrics_port", 0)  # off unless a test asks: nodes on one host would share a port
        env.update({f"TAGGER_{k.upper()}": str(v) for k, v in settings.items()})
        cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "-n", self.node, "-c", str(concurrency),
               "-P", pool, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", loglevel, *extra_args]
        self.service = ServiceSettings().model_copy(update={"redis_url": redis_url, **{
            k: v for k, v in settings.items() if k in ServiceSettings.model_fields}})
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 90.0, require_model: bool = True) -> "LocalWorker":
        """Until the node answers remote control and (for the service) its processes have loaded the model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.tail()}")
            if require_model and self.control("model", timeout=1.0).get("loaded"):
                return self
            if not require_model and self.control("ping", timeout=1.0):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready after {timeout} s: {self.tail()}")

    def control(self, command: str, timeout: float = 5.0, **arguments: Any) -> dict[str, Any]:
        """Ask this node a remote-control command; {} if it did not answer."""
        app = Celery(broker=self.redis_url)
        app.conf.update(self.service.celery_options())  # behind Sentinel: the master's name
        try:
            replies = app.control.broadcast(command, arguments=arguments, destination=[self.node], reply=True,
                                            timeout=timeout)
        except redis.exceptions.ConnectionError:  # e.g. just after a failover: did not answer
            return {}
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


class Fleet:
    """A private Redis plus workers and clients that talk to it; `close()` stops them all."""

    def __init__(self, log_dir: Path, **redis_options: Any) -> None:
        self.log_dir = log_dir
        self.redis = RedisServer(**redis_options).start()
        self.workers: list[LocalWorker] = []
        self.clients: list[TaggerClient] = []

    @property
    def url(self) -> str:
        return self.redis.url

    def worker(self, name: str, **kwargs: Any) -> LocalWorker:
        w = LocalWorker(self.url, name, self.log_dir, **kwargs)
        self.workers.append(w)
        return w

    def client(self, **overrides: Any) -> TaggerClient:
        c = TaggerClient(redis_url=self.url, **overrides)
        self.clients.append(c)
        return c

    def close(self) -> None:
        for w in self.workers:
            w.stop(timeout=20)
        for c in self.clients:
            c.close()
        self.redis.close()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def celery_json(redis_url: str, *args: str, timeout: float = 60) -> Any:
    """Run Celery's own CLI against the service (`celery -A worker <args> --json`) and parse its output."""
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", *args, "--json"], cwd=ROOT,
                         env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"celery {' '.join(args)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
