"""Settings: one typed object each, from the environment."""

from __future__ import annotations

import pytest


def test_worker_settings_come_from_the_environment(monkeypatch) -> None:
    from worker.settings import WorkerSettings

    monkeypatch.setenv("REDIS_URL", "rediss://:secret@cache.example:6380/2")
    monkeypatch.setenv("TAGGER_MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("TAGGER_MAX_BATCH_WAIT_MS", "5")
    s = WorkerSettings()
    assert (s.redis_url, s.max_batch_size, s.max_batch_wait_ms) == ("rediss://:secret@cache.example:6380/2", 64, 5.0)
    monkeypatch.setenv("TAGGER_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError):
        WorkerSettings()
