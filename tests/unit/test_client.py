"""producer.client without a server: how jobs are packed into messages, and what is refused before sending."""

from __future__ import annotations

import json
import os

import pytest

from producer.client import TaggerClient, _messages
from wire.envelope import BODY_OVERHEAD, jobs_envelope
from wire.errors import JobTooLarge
from wire.messages import Job


def test_messages_close_at_the_byte_cap_and_the_job_cap() -> None:
    texts = ["x" * 100] * 10 + ["y" * 900] + ["z" * 10] * 5
    cap = 1000
    messages = list(_messages(texts, max_jobs=4, max_bytes=cap))
    assert [t for m in messages for t in m] == texts  # every job, in order, once
    for m in messages:
        assert len(m) <= 4
        assert len(m) == 1 or BODY_OVERHEAD + sum(len(t) + 1 for t in m) - 1 <= cap
    body = json.loads(jobs_envelope("t", "q", ['{"a":1}'] * 3))["body"]
    assert len(body) == BODY_OVERHEAD + 3 * len('{"a":1}') + 2  # what the worker measures


def test_a_job_too_large_for_any_message_is_refused_before_anything_is_sent() -> None:
    # nothing listens on port 1: had anything been sent, this would be a connection error instead
    client = TaggerClient(redis_url="redis://127.0.0.1:1/0", max_message_bytes=64 * 1024)
    small = Job.from_bytes(b"x" * 100, "small")
    huge = Job.from_bytes(b"x" * 40_000, "huge")  # 53 KB as base64: over half of 64 KiB
    with pytest.raises(JobTooLarge, match="nothing was sent"):
        client.submit_jobs([small, huge])
    with pytest.raises(ValueError, match="only http and https"):
        client.job(url="file:///etc/passwd")
    assert client.job("https://cdn.example.com/p/shirt.jpg?v=2").product_id == "shirt.jpg"


def test_max_side_shrinks_files_and_bytes_before_sending_and_leaves_urls_alone(tmp_path) -> None:
    import io

    import numpy as np
    from PIL import Image

    from devtools.images import encode

    rng = np.random.default_rng(0)
    photo = encode(Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)), "JPEG", quality=90)
    (tmp_path / "big.jpg").write_bytes(photo)
    client = TaggerClient(redis_url="redis://127.0.0.1:1/0")  # nothing is sent
    for job in (client.job(tmp_path / "big.jpg", max_side=300), client.job(photo, "sku", max_side=300)):
        sent = job.image_bytes()
        assert len(sent) < len(photo) and Image.open(io.BytesIO(sent)).size == (300, 225)
    assert client.job(tmp_path / "big.jpg").image_bytes() == photo  # off by default
    assert client.job(url="https://cdn.example.com/a.jpg", max_side=300).image_url == "https://cdn.example.com/a.jpg"
    with pytest.raises(ValueError, match="at least 28 pixels"):
        client.job(photo, "sku", max_side=10)


def test_read_image_reads_files_once_and_refuses_what_the_worker_would(tmp_path) -> None:
    from producer.client import read_image

    f = tmp_path / "a.png"
    f.write_bytes(b"\x89PNG" + bytes(2000))
    assert read_image(f, 4096) == f.read_bytes() and read_image(str(f), 2004) == f.read_bytes()
    with pytest.raises(ValueError, match="2,004 bytes is over the 2,003-byte image limit"):
        read_image(f, 2003)
    with pytest.raises(ValueError, match="over the 10-byte"):
        read_image(b"x" * 11, 10)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png", 4096)
    with pytest.raises(ValueError, match="not a regular file"):
        read_image(tmp_path, 4096)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # nobody writes to it: an open without O_NONBLOCK would hang here
    with pytest.raises(ValueError, match="not a regular file"):
        read_image(fifo, 4096)
