"""Redis behind Sentinel: `sentinel://` URLs for the client, the worker's own Redis calls, and
Celery's broker and result backend.

    REDIS_URL='sentinel://:PASSWORD@s1:26379/0;sentinel://:PASSWORD@s2:26379/0;sentinel://:PASSWORD@s3:26379/0'
    TAGGER_SENTINEL_MASTER=mymaster      # the name the Sentinels monitor the primary under
    TAGGER_SENTINEL_PASSWORD=...         # only if the Sentinels themselves require one

As in Celery and kombu, the URL lists the Sentinels (separated by `;`) and its password and
database are the Redis primary's. Every connection asks the Sentinels where the primary is, and
asks again after losing it, so a failover is a reconnect: clients and workers carry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SCHEME = "sentinel"
DEFAULT_PORT = 26379


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SCHEME


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: list[tuple[str, int]]
    username: str | None
    password: str | None
    db: int


def parse(url: str) -> SentinelUrl:
    """`sentinel://[[user]:password@]host[:port][/db];sentinel://host[:port];...`: credentials and
    database from the first address that has them."""
    sentinels, username, password, db = [], None, None, 0
    for chunk in filter(None, (c.strip() for c in url.split(";"))):
        parts = urlsplit(chunk)
        if parts.scheme.lower() != SCHEME or not parts.hostname:
            raise ValueError(f"not a sentinel:// address: {chunk.split('@')[-1]!r}")
        sentinels.append((parts.hostname, parts.port or DEFAULT_PORT))
        if parts.password and password is None:
            username, password = unquote(parts.username or "") or None, unquote(parts.password)
        if parts.path.strip("/") and not db:
            db = int(parts.path.strip("/"))
    if not sentinels:
        raise ValueError("a sentinel:// URL names at least one Sentinel")
    return SentinelUrl(sentinels, username, password, db)


def primary(url: str, master: str, sentinel_password: str | None, **connection: Any) -> redis.Redis:
    """A client of the current primary: each new connection asks the Sentinels where it is."""
    u = parse(url)
    sockets = {k: v for k, v in connection.items() if k.startswith("socket_")}
    sentinel = Sentinel(u.sentinels, sentinel_kwargs={**sockets, "password": sentinel_password}, **connection)
    return sentinel.master_for(master, redis_class=redis.Redis, username=u.username, password=u.password, db=u.db)


def celery_options(url: str, master: str, sentinel_password: str | None) -> dict[str, Any]:
    """What a Celery app needs besides the URL to use a Sentinel broker and result backend ({} for plain Redis)."""
    if not is_sentinel(url):
        return {}
    options: dict[str, Any] = {"master_name": master}
    if sentinel_password:
        options["sentinel_kwargs"] = {"password": sentinel_password}
    return {"broker_transport_options": dict(options), "result_backend_transport_options": dict(options)}
