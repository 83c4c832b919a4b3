"""The settings producer and worker must agree on: one typed object, from the environment.

Every field reads `TAGGER_<NAME>` (e.g. TAGGER_QUEUE); the Redis URL reads `REDIS_URL`.
`ClientSettings` (producer.settings) and `WorkerSettings` (worker.settings) extend it.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ServiceSettings(BaseSettings):
    """What producer and worker must agree on."""

    model_config = SettingsConfigDict(env_prefix="TAGGER_", extra="ignore", frozen=True)

    redis_url: str = Field(DEFAULT_REDIS_URL, validation_alias=AliasChoices("REDIS_URL", "TAGGER_REDIS_URL"),
                           description="broker and result backend; redis://, rediss:// (TLS), with password if set")
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
