"""The service's message schemas: one pydantic model per message type.

A `Job` travels producer -> Redis -> worker inside a Celery task message (JSON only);
a `TagResult` travels back, into the Celery result backend and the results stream.
"""

from __future__ import annotations

import binascii
import json
import time
import uuid
from enum import Enum
from typing import Any, Optional

import pybase64
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wire.errors import DecodeError, ErrorCode
from wire.urls import MAX_URL_CHARS

# Job ids become part of Redis keys; keep them boring.
JOB_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
PRODUCT_ID_MAX = 256
Metadata = dict[str, str | int | float | bool | None]
# Metadata comes back with the result, into the result backend and the results stream: bounded,
# so that retention (TAGGER_STREAM_MAXLEN entries) bounds Redis memory too. Flat by its type.
MAX_METADATA_KEYS = 64
MAX_METADATA_BYTES = 4096  # as compact JSON


class Status(str, Enum):
    TAGGED = "tagged"
    FAILED = "failed"


def new_job_id() -> str:
    return uuid.uuid4().hex


class Job(BaseModel):
    """One product image to tag: its bytes (`image_b64`) or where the worker fetches them (`image_url`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number must survive a JSON round trip

    job_id: str = Field(default_factory=new_job_id, pattern=JOB_ID_PATTERN,
                        description="idempotency key: one final result per job id")
    product_id: str = Field(min_length=1, max_length=PRODUCT_ID_MAX)
    image_b64: Optional[str] = Field(None, description="the image file's bytes (PNG, JPEG or WebP: wire.formats), "
                                     "base64")
    image_url: Optional[str] = Field(None, max_length=MAX_URL_CHARS,
                                     description="or an http(s) URL the worker fetches the file from "
                                     "(wire.urls; its host must be in the worker's TAGGER_URL_ALLOWLIST)")
    metadata: Metadata = Field(default_factory=dict, description=f"returned with the result: flat, at most "
                               f"{MAX_METADATA_KEYS} keys and {MAX_METADATA_BYTES} bytes of JSON")
    enqueued_at: float = Field(default_factory=time.time, description="unix seconds, set by the producer")

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, v: Metadata) -> Metadata:
        if not v:  # the common case: nothing to measure (json.dumps would cost more than the job's other checks)
            return v
        if len(v) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata has {len(v)} keys; the limit is {MAX_METADATA_KEYS}")
        size = len(json.dumps(v, separators=(",", ":")))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size:,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}")
        return v

    @model_validator(mode="after")
    def _one_image(self) -> "Job":
        if (self.image_b64 is None) == (self.image_url is None):
            raise ValueError("a job carries exactly one of image_b64 and image_url")
        return self

    @classmethod
    def from_bytes(cls, image: bytes, product_id: str, job_id: str | None = None,
                   metadata: Metadata | None = None) -> "Job":
        return cls._new(product_id, job_id, metadata, image_b64=pybase64.b64encode_as_string(image))

    @classmethod
    def from_url(cls, url: str, product_id: str, job_id: str | None = None,
                 metadata: Metadata | None = None) -> "Job":
        return cls._new(product_id, job_id, metadata, image_url=url)

    @classmethod
    def _new(cls, product_id: str, job_id: str | None, metadata: Metadata | None, **image: str) -> "Job":
        fields: dict[str, Any] = {"product_id": product_id, "metadata": metadata or {}, **image}
        if job_id is not None:
            fields["job_id"] = job_id
        return cls(**fields)

    def wire_json(self) -> str:
        """The job as it travels: JSON, without the image field it does not use."""
        return self.model_dump_json(exclude_none=True)

    def image_bytes(self) -> bytes:
        if self.image_b64 is None:
            raise DecodeError("the job carries an image URL, not image bytes")
        try:
            # pybase64: SIMD base64, 10-50x binascii (200 us for a 64 KB photo); validate: no byte
            # outside the alphabet, padding only at the end
            return pybase64.b64decode(self.image_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"image_b64 is not valid base64: {exc}") from None


class Score(BaseModel):
    label: str
    label_id: int
    score: float


class Colour(BaseModel):
    """One of the item's dominant colours (ml.colour: a 16-name catalogue palette, CIELAB distance)."""

    name: str = Field(description="palette name, e.g. navy, beige")
    hex: str = Field(description="the colour's mean on the item, #rrggbb")
    share: float = Field(description="its share of the item's pixels (the background never counts)")


class Timings(BaseModel):
    enqueued_at: float = Field(description="unix seconds when the producer enqueued the job")
    started_at: float = Field(description="unix seconds when its batch started on the worker")
    finished_at: float = Field(description="unix seconds when its result was ready")
    batch_size: int = Field(description="jobs in the batch this job ran in")

    @property
    def queue_ms(self) -> float:
        return 1000 * (self.started_at - self.enqueued_at)

    @property
    def total_ms(self) -> float:
        return 1000 * (self.finished_at - self.enqueued_at)


class TagResult(BaseModel):
    """The one final result of a job: a tag or an error."""

    job_id: str
    product_id: str
    status: Status
    label: Optional[str] = None
    label_id: Optional[int] = None
    confidence: Optional[float] = None
    top3: list[Score] = Field(default_factory=list)
    category: Optional[str] = Field(default=None, description="e.g. tops, footwear (the model's taxonomy)")
    department: Optional[str] = Field(default=None, description="e.g. clothing, accessories")
    needs_review: bool = False
    colours: list[Colour] = Field(default_factory=list, description="up to 3, largest share first; none for a "
                                  "grey image")
    colour_low_contrast: bool = Field(default=False, description="the top colour is close to the background's "
                                      "(white on white): check it")
    model: Optional[str] = Field(default=None, description="architecture name")
    model_version: Optional[str] = Field(default=None, description="weights hash of the checkpoint")
    timings: Timings
    attempts: int = 1
    worker: Optional[str] = None
    error_code: Optional[ErrorCode] = None
    error: Optional[str] = Field(default=None, description="human-readable reason, for failures")
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("top3")
    @classmethod
    def _at_most_three(cls, v: list[Score]) -> list[Score]:
        if len(v) > 3:
            raise ValueError("top3 holds at most three scores")
        return v

    @classmethod
    def parse(cls, data: str | bytes | dict[str, Any]) -> "TagResult":
        try:
            if isinstance(data, dict):
                return cls.model_validate(data)
            return cls.model_validate_json(data)
        except ValueError as exc:
            raise DecodeError(f"not a TagResult: {exc}") from None
