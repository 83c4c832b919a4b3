"""The settings producer and worker must agree on: one typed object, from the environment.

Every field reads `TAGGER_<NAME>` (e.g. TAGGER_QUEUE); the Redis URL reads `REDIS_URL`.
`ClientSettings` (producer.settings) and `WorkerSettings` (worker.settings) extend it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SENTINEL_MASTER = "mymaster"  # Redis's own example name in sentinel.conf


class ServiceSettings(BaseSettings):
    """What producer and worker must agree on."""

    model_config = SettingsConfigDict(env_prefix="TAGGER_", extra="ignore", frozen=True)

    redis_url: str = Field(DEFAULT_REDIS_URL, validation_alias=AliasChoices("REDIS_URL", "TAGGER_REDIS_URL"),
                           description="broker and result backend; redis://, rediss:// (TLS), with password if set; "
                           "or sentinel://:PASSWORD@host:26379/0;sentinel://host2:26379;... for Redis behind Sentinel")
    sentinel_master: str = Field(DEFAULT_SENTINEL_MASTER,
                                 description="with sentinel:// URLs: the name the Sentinels monitor the primary under")
    sentinel_password: str | None = Field(None, description="with sentinel:// URLs: the Sentinels' own password, if "
                                          "they require one (the URL's password is the primary's)")
    queue: str = Field("tagger", description="the Celery queue (a Redis list of that name)")
    task_name: str = Field("tagger.tag", description="the Celery task that carries jobs")
    results_stream: str = Field("tagger:results", description="Redis stream with one entry per final result")
    dead_letter_stream: str = Field("tagger:dead", description="Redis stream of jobs that exhausted their attempts")
    result_ttl_s: int = Field(86_400, ge=60, description="how long a result stays in the result backend")
    stream_maxlen: int = Field(100_000, ge=100, description="results stream retention, in entries (approximate trim)")
    dead_letter_maxlen: int = Field(10_000, ge=10, description="dead-letter stream retention, in entries")
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest accepted image file")
    max_jobs_per_message: int = Field(1024, ge=1, le=65_536, description="jobs one message may carry")
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024,
                                   description="the worker rejects larger message bodies unread; the client closes "
                                   "each message before it passes half of this")

    def redis_client(self) -> "redis.Redis":
        """A client of this Redis (the primary, behind Sentinel), with reconnects (wire.connection)."""
        from wire.connection import connect

        return connect(self.redis_url, self.sentinel_master, self.sentinel_password)

    def celery_options(self) -> dict[str, Any]:
        """Celery configuration this Redis needs besides its URL: Sentinel's master name, if any."""
        from wire.sentinel import celery_options

        return celery_options(self.redis_url, self.sentinel_master, self.sentinel_password)
