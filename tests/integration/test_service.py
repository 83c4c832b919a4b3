"""The tagging service end to end: real Redis, real `celery worker` processes."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import torch

from devtools.images import png_claiming
from devtools.local import celery_json
from tests.integration.accounting import until
from wire.errors import ErrorCode
from wire.messages import Job, Status


def expected_labels(images: list[tuple[bytes, int]]) -> list[int]:
    """What the default model says in process, for the same PNG files."""
    from ml.checkpoint import load
    from ml.preprocess import preprocess
    from worker.settings import DEFAULT_CHECKPOINT

    ck = load(DEFAULT_CHECKPOINT)
    x = torch.from_numpy(np.stack([preprocess(png) for png, _ in images])).unsqueeze(1).float()
    with torch.inference_mode():
        return ck.model((x / 255 - ck.mean) / ck.std).argmax(1).tolist()


def test_known_images_come_back_with_the_models_labels_in_backend_and_stream(worker, client, test_images) -> None:
    images = test_images[:200]
    handles = client.submit_many([(png, f"sku-{i}") for i, (png, _) in enumerate(images)], chunk_size=16)
    results = client.wait([h.job_id for h in handles], timeout=60)
    want = expected_labels(images)
    got = [results[h.job_id] for h in handles]
    assert [r.status for r in got] == [Status.TAGGED] * len(images)
    assert [r.label_id for r in got] == want  # same tag as the model in process
    accuracy = np.mean([r.label_id == label for r, (_, label) in zip(got, images)])
    assert accuracy > 0.85
    first = got[0]
    assert first.label == first.top3[0].label and len(first.top3) == 3
    assert first.top3[0].score >= first.top3[1].score >= first.top3[2].score
    assert first.model and first.model_version  # names the model that produced it
    # the review flag follows the served model's threshold; the taxonomy fills category and department
    from worker.pool.inference import chosen_threshold
    from worker.settings import DEFAULT_CHECKPOINT

    threshold = chosen_threshold(DEFAULT_CHECKPOINT)
    assert all(r.needs_review == (r.confidence < threshold) for r in got)
    assert any(r.needs_review for r in got) and not all(r.needs_review for r in got)
    assert {(r.label, r.category, r.department) for r in got if r.label == "Bag"} == {("Bag", "bags", "accessories")}
    assert first.timings.enqueued_at <= first.timings.started_at <= first.timings.finished_at
    # the Celery result backend: the handle's .get() returns the same result
    assert handles[5].get(timeout=10) == results[handles[5].job_id]
    # the stream: one entry per job
    streamed = {r.job_id: r for r in client.results()}
    assert set(streamed) == {h.job_id for h in handles}
    assert streamed[handles[7].job_id] == results[handles[7].job_id]


def test_single_image_burst_forms_batches(worker, client, test_images) -> None:
    before = worker.control("batching")
    jobs = [Job.from_bytes(png, f"single-{i}") for i, (png, _) in enumerate(test_images[:300])]
    handles = client.submit_jobs(jobs, chunk_size=1)  # one message per job
    results = client.wait([h.job_id for h in handles], timeout=60)
    sizes = [r.timings.batch_size for r in results.values()]
    assert max(sizes) > 1
    after = worker.control("batching")
    batches = after["batches"] - before["batches"]
    assert after["jobs"] - before["jobs"] == 300
    assert 300 / batches > 1  # mean batch size over the burst


def test_bad_images_fail_alone_and_the_rest_of_the_batch_is_tagged(worker, client, test_images) -> None:
    good = [Job.from_bytes(png, f"good-{i}") for i, (png, _) in enumerate(test_images[:20])]
    png = test_images[0][0]
    bad = {
        "truncated": (png[: len(png) // 2], {ErrorCode.DECODE_ERROR, ErrorCode.UNSUPPORTED_FORMAT}),
        "random": (os.urandom(500), {ErrorCode.UNSUPPORTED_FORMAT}),
        "empty": (b"", {ErrorCode.EMPTY_IMAGE}),
        "huge": (png_claiming(20_000, 20_000), {ErrorCode.TOO_MANY_PIXELS}),
    }
    bad_jobs = [Job.from_bytes(data, name, job_id=f"bad-{name}") for name, (data, _) in bad.items()]
    mixed = good[:10] + bad_jobs + good[10:]
    handles = client.submit_jobs(mixed, chunk_size=len(mixed))  # all in one message, so one batch
    results = client.wait([h.job_id for h in handles], timeout=60)
    for name, (_, codes) in bad.items():
        r = results[f"bad-{name}"]
        assert r.status is Status.FAILED and r.error_code in codes, (name, r)
        assert r.error and r.label is None
    assert all(results[j.job_id].status is Status.TAGGED for j in good)
    assert {r.timings.batch_size for r in results.values()} == {len(mixed)}
    assert worker.control("ping") == {"ok": "pong"}


def test_two_workers_share_the_queue_and_tag_every_job_once(fleet, test_images) -> None:
    a = fleet.worker("alpha", concurrency=1, max_batch_size=32)
    b = fleet.worker("beta", concurrency=1, max_batch_size=32)
    a.wait_ready(), b.wait_ready()
    client = fleet.client()
    jobs = [Job.from_bytes(png, f"p{i}") for i, (png, _) in enumerate(test_images * 4)]  # 2,000 jobs
    handles = client.submit_jobs(jobs, chunk_size=8)
    results = client.wait([h.job_id for h in handles], timeout=120)
    assert len(results) == len(jobs) and all(r.status is Status.TAGGED for r in results.values())
    by_worker = Counter(r.worker for r in results.values())
    assert set(by_worker) == {a.node, b.node}, by_worker
    streamed = Counter(r.job_id for r in client.results())
    assert len(streamed) == len(jobs) and set(streamed.values()) == {1}  # exactly once each
    # a batch's results are in Redis a moment before its report reaches its node's totals
    assert until(lambda: a.control("batching")["jobs"] + b.control("batching")["jobs"] == len(jobs), 10)


def test_inspect_model_and_batching_print_what_an_operator_needs(worker, redis_url, client, test_images) -> None:
    client.wait([h.job_id for h in client.submit_many([(test_images[0][0], "x")])], timeout=30)
    model = celery_json(redis_url, "inspect", "model", "-t", "5")[worker.node]
    for key in ("arch", "model_version", "checkpoint", "test_accuracy", "classes", "device", "params"):
        assert key in model, key
    from ml.checkpoint import load
    from worker.settings import DEFAULT_CHECKPOINT

    default = load(DEFAULT_CHECKPOINT)  # the worker serves the committed default model
    assert (model["arch"], model["params"], model["model_version"]) == (default.arch, default.params, default.version)
    assert model["test_accuracy"] == default.metrics["accuracy"] and model["classes"] == list(default.classes)
    batching = celery_json(redis_url, "inspect", "batching", "-t", "5")[worker.node]
    for key in ("batches", "mean_batch_size", "max_batch_size", "tagged", "failed", "mean_queue_wait_ms",
                "images_per_second"):
        assert key in batching, key
    assert batching["batches"] >= 1 and batching["tagged"] >= 1
    assert worker.node in celery_json(redis_url, "inspect", "ping", "-t", "5")


def test_results_stream_consumer_group_delivers_each_result_to_one_member(worker, client, test_images) -> None:
    handles = client.submit_many([(png, f"g{i}") for i, (png, _) in enumerate(test_images[:50])])
    client.wait([h.job_id for h in handles], timeout=30)
    stream = client.results(group="billing", consumer="c1", count=10)
    first = [next(stream).job_id for _ in range(20)]
    stream.close()  # c1 stops after 20: the 20th is not acknowledged, 10 more were delivered unread
    rest = [r.job_id for r in client.results(group="billing", consumer="c2", claim_idle_ms=0)]
    assert set(first) | set(rest) == {h.job_id for h in handles}
    assert set(first) & set(rest) == {first[-1]}  # at-least-once: only the unacknowledged one twice
    assert [r.job_id for r in client.results(group="billing", consumer="c3")] == []


def test_a_photo_comes_back_with_its_colours_and_a_grey_image_with_none(worker, client, dataset, test_images) -> None:
    from ml.colour import nearest_name
    from ml.photos import photo_rng, render_jpeg_with_colour

    photos = [render_jpeg_with_colour(dataset.val.images[i].numpy(), photo_rng(0, "val", i)) for i in range(12)]
    handles = client.submit_many([(blob, f"photo-{i}") for i, (blob, _) in enumerate(photos)]
                                 + [(test_images[0][0], "grey")])
    results = client.wait([h.job_id for h in handles], timeout=60)
    got = [results[h.job_id] for h in handles]
    right = sum(r.colours and r.colours[0].name == nearest_name(painted) for r, (_, painted) in zip(got, photos))
    assert right >= 10, [(r.colours, nearest_name(p)) for r, (_, p) in zip(got, photos)]
    for r in got[:-1]:
        assert 1 <= len(r.colours) <= 3 and abs(sum(c.share for c in r.colours) - 1) < 0.35
        assert all(c.hex.startswith("#") and len(c.hex) == 7 for c in r.colours)
    assert got[-1].status.value == "tagged" and got[-1].colours == []  # a grey Fashion-MNIST image has no colour
    streamed = {r.job_id: r for r in client.results()}
    assert streamed[handles[0].job_id].colours == got[0].colours  # the stream carries them too
