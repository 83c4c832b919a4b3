"""`python -m producer`, as a backend's script or an operator runs it, against real workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from worker.settings import REPO_ROOT as ROOT


def test_cli_submits_files_and_prints_one_json_line_per_result(worker, redis_url, tmp_path, test_images) -> None:
    for i, (png, label) in enumerate(test_images[:3]):
        (tmp_path / f"item{i}.png").write_bytes(png)
    env = {**os.environ, "REDIS_URL": redis_url}
    out = subprocess.run([sys.executable, "-m", "producer", "submit", *sorted(map(str, tmp_path.glob("*.png"))),
                          "--wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [x["product_id"] for x in lines] == ["item0.png", "item1.png", "item2.png"]
    assert all(x["status"] == "tagged" and x["label"] for x in lines)
    follow = subprocess.run([sys.executable, "-m", "producer", "results"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert len(follow.stdout.splitlines()) == 3

    (tmp_path / "notes.txt").write_text("not an image")
    bad = subprocess.run([sys.executable, "-m", "producer", "submit", str(tmp_path / "notes.txt")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a PNG, JPEG or WebP image" in bad.stderr


def test_cli_says_clearly_when_redis_is_unreachable(tmp_path, test_images) -> None:
    from devtools.redis_server import free_port

    (tmp_path / "a.png").write_bytes(test_images[0][0])
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    out = subprocess.run([sys.executable, "-m", "producer", "submit", str(tmp_path / "a.png")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3 and "cannot reach Redis at redis://127.0.0.1:" in out.stderr


def test_cli_refuses_a_file_over_the_byte_limit_before_sending_anything(tmp_path, test_images) -> None:
    from devtools.redis_server import free_port

    (tmp_path / "a.png").write_bytes(test_images[0][0])
    (tmp_path / "big.png").write_bytes(test_images[0][0] + bytes(4096))  # a PNG header, 4 KB over
    # an unreachable Redis: exit 2 (the file), not 3 (Redis), shows nothing was about to be sent
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TAGGER_MAX_IMAGE_BYTES": "4096"}
    out = subprocess.run([sys.executable, "-m", "producer", "submit", str(tmp_path / "a.png"), str(tmp_path / "big.png")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "big.png" in out.stderr and "over the 4,096-byte image limit" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_shrinks_large_photos_before_sending_with_max_side(worker, redis_url, tmp_path, dataset) -> None:
    from devtools.images import jpeg_photos

    items = dataset.test.images[:3].numpy()
    labels = dataset.test.labels[:3].tolist()
    for i, photo in enumerate(jpeg_photos(items, 3, side=1000)):
        (tmp_path / f"p{i}.jpg").write_bytes(photo)
    env = {**os.environ, "REDIS_URL": redis_url}
    files = sorted(map(str, tmp_path.glob("*.jpg")))
    runs = {}
    for flags in ([], ["--max-side", "256"]):
        out = subprocess.run([sys.executable, "-m", "producer", "submit", *files, "--wait", *flags], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        runs[tuple(flags)] = [json.loads(line) for line in out.stdout.splitlines()]
    shrunk = runs[("--max-side", "256")]
    assert all(x["status"] == "tagged" for x in shrunk)
    # the same tags as the full-size photos (and, for these three, the true classes)
    assert [x["label_id"] for x in shrunk] == [x["label_id"] for x in runs[()]] == labels
    too_small = subprocess.run([sys.executable, "-m", "producer", "submit", files[0], "--max-side", "8"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=60)
    assert too_small.returncode == 2 and "--max-side 8: at least 28 pixels" in too_small.stderr


def tagged(job_id: str) -> "TagResult":
    from wire.messages import TagResult, Timings

    now = time.time()
    return TagResult(job_id=job_id, product_id=f"{job_id}.png", status="tagged", label="Bag", label_id=8,
                     timings=Timings(enqueued_at=now, started_at=now, finished_at=now, batch_size=1))


def test_results_come_in_batches_as_published_and_wait_prints_them_in_the_jobs_order(client, redis_url,
                                                                                     capsys) -> None:
    """Results published by the worker's own script, out of order, some before the wait and some
    during it; two never come. The CLI's printer writes them in the jobs' order, and on a timeout
    the ones that came (exit 5 follows)."""
    from producer.cli import print_in_order
    from producer.errors import ResultTimeout
    from wire.settings import ServiceSettings
    from worker.pool.publish import Publisher

    ids = [f"job-{i}" for i in range(6)]
    publisher = Publisher(ServiceSettings(redis_url=redis_url))
    publisher.publish([tagged("job-3"), tagged("job-1")])  # before the wait: found by its MGET
    later = threading.Timer(0.5, lambda: publisher.publish([tagged("job-0")]))  # during it: from the stream
    later.start()
    batches = client.result_batches(ids, timeout=3)
    assert sorted(r.job_id for r in next(batches)) == ["job-1", "job-3"]
    assert [r.job_id for r in next(batches)] == ["job-0"]
    with pytest.raises(ResultTimeout) as missing:
        next(batches)
    assert missing.value.missing == ["job-2", "job-4", "job-5"]
    later.join()

    capsys.readouterr()
    with pytest.raises(ResultTimeout):
        print_in_order(client, ids, timeout=1)
    assert [json.loads(line)["job_id"] for line in capsys.readouterr().out.splitlines()] == ["job-0", "job-1", "job-3"]
    publisher.publish([tagged("job-5"), tagged("job-2"), tagged("job-4")])
    assert print_in_order(client, ids, timeout=1) == 0
    assert [json.loads(line)["job_id"] for line in capsys.readouterr().out.splitlines()] == ids


def test_a_wait_passes_over_results_stream_entries_no_worker_wrote(client, redis_url) -> None:
    """Entries another program appended to the results stream (unreadable, another job's result
    under this job's id, no result at all) neither crash a wait nor become the job's result; a
    backend value holding another job's result reads as this job failed, saying so."""
    from wire.errors import ErrorCode
    from wire.keys import result_key
    from wire.messages import Status
    from wire.settings import ServiceSettings
    from worker.pool.publish import Publisher, backend_meta

    publisher = Publisher(ServiceSettings(redis_url=redis_url))
    stream, r = client.settings.results_stream, client.redis

    def hostile_then_real() -> None:
        r.xadd(stream, {"job_id": "job-a", "result": b"\xff not json"})
        r.xadd(stream, {"job_id": "job-a", "result": tagged("job-b").model_dump_json()})
        r.xadd(stream, {"job_id": "job-a"})
        publisher.publish([tagged("job-a")])

    writer = threading.Timer(0.3, hostile_then_real)
    writer.start()
    got = client.wait(["job-a"], timeout=10)
    writer.join()
    assert got["job-a"].job_id == "job-a" and got["job-a"].product_id == "job-a.png"

    r.set(result_key("job-c"), backend_meta("SUCCESS", tagged("job-d").model_dump_json(), "job-c",
                                            '"2026-11-26T00:00:00"'), ex=60)
    wrong = client.wait(["job-c"], timeout=1)["job-c"]
    assert wrong.status is Status.FAILED and wrong.error_code is ErrorCode.INVALID_JOB
    assert "job job-d's tagger result" in wrong.error
