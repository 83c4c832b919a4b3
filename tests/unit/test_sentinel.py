"""wire.sentinel: sentinel:// URLs as Celery and kombu write them, and the options Celery needs."""

from __future__ import annotations

import pytest

from wire.sentinel import celery_options, is_sentinel, parse


def test_a_url_lists_the_sentinels_with_the_primarys_password_and_database() -> None:
    u = parse("sentinel://:p%40ss@s1:26380/2;sentinel://s2;sentinel://:other@10.0.0.3:26381/5")
    assert u.sentinels == [("s1", 26380), ("s2", 26379), ("10.0.0.3", 26381)]
    assert (u.username, u.password, u.db) == (None, "p@ss", 2)
    assert parse("sentinel://user:pw@h").username == "user"
    assert is_sentinel("SENTINEL://h") and not is_sentinel("redis://h") and not is_sentinel("rediss://h")


@pytest.mark.parametrize("url", ["sentinel://", "redis://h:6379;sentinel://h2", ";"])
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse(url)


def test_celery_gets_the_master_name_and_the_sentinels_password_for_broker_and_backend() -> None:
    assert celery_options("redis://h:6379/0", "m", "x") == {}
    options = celery_options("sentinel://h", "tagger-primary", "sentinel-pw")
    for key in ("broker_transport_options", "result_backend_transport_options"):
        assert options[key] == {"master_name": "tagger-primary", "sentinel_kwargs": {"password": "sentinel-pw"}}
    assert "sentinel_kwargs" not in celery_options("sentinel://h", "m", None)["broker_transport_options"]
