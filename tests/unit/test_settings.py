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


def test_reload_accepts_only_checkpoints_inside_the_models_directory(tmp_path, monkeypatch) -> None:
    from worker.settings import WorkerSettings

    (tmp_path / "models" / "v2").mkdir(parents=True)
    (tmp_path / "models" / "v2" / "model.pt").write_bytes(b"x")
    (tmp_path / "secret.pt").write_bytes(b"x")
    (tmp_path / "models" / "link.pt").symlink_to(tmp_path / "secret.pt")
    monkeypatch.setenv("TAGGER_MODELS_DIR", str(tmp_path / "models"))
    s = WorkerSettings()
    assert s.checkpoint == tmp_path / "models" / "compact" / "model.pt"  # the default follows the folder
    inside = tmp_path / "models" / "v2" / "model.pt"
    assert s.allowed_checkpoint("v2/model.pt") == inside == s.allowed_checkpoint(str(inside))
    for outside in ("../secret.pt", str(tmp_path / "secret.pt"), "link.pt", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside the models directory"):
            s.allowed_checkpoint(outside)
    with pytest.raises(ValueError, match="no such checkpoint"):
        s.allowed_checkpoint("v3/model.pt")
