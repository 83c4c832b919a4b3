"""wire.messages: job ids are checked, images round-trip, bad input is a DecodeError."""

from __future__ import annotations

import pytest

from wire.errors import DecodeError
from wire.messages import Job, TagResult


def test_job_ids_are_checked_and_images_round_trip() -> None:
    job = Job.from_bytes(b"\x89PNG...", "sku-1", job_id="order-7:line-2")
    assert job.image_bytes() == b"\x89PNG..."
    assert Job.model_validate_json(job.model_dump_json()) == job
    for bad in ("", "has space", "x" * 129, "a/b"):
        with pytest.raises(ValueError):
            Job.from_bytes(b"x", "sku", job_id=bad)
    with pytest.raises(DecodeError):
        Job(product_id="p", image_b64="%%%not base64").image_bytes()
    with pytest.raises(DecodeError):
        TagResult.parse(b"{}")


def test_metadata_is_flat_and_bounded_before_anything_is_sent() -> None:
    from wire.messages import MAX_METADATA_BYTES, MAX_METADATA_KEYS

    assert Job.from_bytes(b"x", "sku", metadata={"shop": "eu", "n": 1, "ok": True, "none": None}).metadata["n"] == 1
    for bad in ({"nested": {"a": 1}}, {"list": [1, 2]}, {f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)},
                {"blob": "x" * MAX_METADATA_BYTES}):
        with pytest.raises(ValueError):
            Job.from_bytes(b"x", "sku", metadata=bad)
    with pytest.raises(ValueError):
        Job(product_id="p", image_b64="eA==", enqueued_at=float("inf"))  # would not survive a JSON round trip


def test_image_base64_is_the_standard_alphabet_both_ways_and_strict() -> None:
    """Another language's sender encodes with its standard base64: the worker reads exactly those
    bytes; our jobs decode with any standard decoder; malformed base64 is the job's DecodeError."""
    import base64
    import os

    for n in (0, 1, 2, 3, 4, 5, 63, 64, 65, 1000, 65_537):
        raw = os.urandom(n)
        assert Job(product_id="p", image_b64=base64.b64encode(raw).decode()).image_bytes() == raw
        assert base64.b64decode(Job.from_bytes(raw, "p").image_b64 or "", validate=True) == raw
    for bad in ("abc", "ab=c", "YW==Jj", "YWJjZA===", "YWJj\n", "YW Jj", "YWJj-_8=", "é"):
        with pytest.raises(DecodeError):
            Job(product_id="p", image_b64=bad).image_bytes()
