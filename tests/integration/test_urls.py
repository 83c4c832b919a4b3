"""Jobs by URL end to end: a real local HTTP server, real Redis, a real worker; each bad job fails alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devtools.local import Fleet
from tests.integration.accounting import FAST, URL_SETTINGS
from wire.errors import ErrorCode
from wire.messages import Job, Status
from worker.settings import REPO_ROOT


@pytest.fixture(scope="module")
def url_fleet(logs, test_images):
    with Fleet(logs) as fleet:
        fleet.worker("urls", concurrency=2, **FAST, **URL_SETTINGS).wait_ready()
        yield fleet


def test_a_mixed_batch_of_url_and_bytes_jobs_where_each_bad_job_fails_alone(url_fleet, image_server,
                                                                             test_images) -> None:
    client = url_fleet.client()
    port = image_server.base.rsplit(":", 1)[1]
    image_server.files["fake.png"] = b"an image content type, but not an image"
    good_urls = [Job.from_url(image_server.url(f"files/i{i}.png"), f"url-{i}") for i in range(20)]
    good_bytes = [Job.from_bytes(test_images[i][0], f"bytes-{i}") for i in range(20)]
    bad = {  # product id -> (URL, the code its result must carry)
        "not-listed": (f"http://127.0.0.2:{port}/files/i0.png", ErrorCode.URL_NOT_ALLOWED),
        "to-private": (image_server.url(f"redirect?to=http://localhost:{port}/files/i0.png"),
                       ErrorCode.URL_NOT_ALLOWED),
        "not-http": ("file:///etc/passwd", ErrorCode.URL_NOT_ALLOWED),
        "slow": (image_server.url("slow/5/i0.png"), ErrorCode.FETCH_TIMEOUT),
        "missing": (image_server.url("status/404"), ErrorCode.FETCH_FAILED),
        "broken": (image_server.url("status/500"), ErrorCode.FETCH_FAILED),
        "oversize": (image_server.url(f"huge/{11 * 1024 * 1024}"), ErrorCode.IMAGE_TOO_LARGE),
        "html": (image_server.url("text/i0.png"), ErrorCode.UNSUPPORTED_CONTENT_TYPE),
        "not-an-image": (image_server.url("redirect?to=/files/fake.png"), ErrorCode.UNSUPPORTED_FORMAT),  # decoded
    }
    bad_jobs = [Job.from_url(url, name) for name, (url, _) in bad.items()]  # the client would refuse file://
    bad_jobs.append(Job.from_bytes(b"\x89PNG\r\n\x1a\n broken", "bad-bytes"))
    jobs = good_urls[:10] + bad_jobs + good_bytes + good_urls[10:]
    client.submit_jobs(jobs, chunk_size=64)  # one message: one batch holds all of them
    results = client.wait([j.job_id for j in jobs], timeout=60)
    by_product = {r.product_id: r for r in results.values()}
    for name, (_, code) in bad.items():
        assert by_product[name].error_code is code, (name, by_product[name].error)
    assert by_product["missing"].error.startswith("HTTP 404") and "HTTP 500" in by_product["broken"].error
    assert by_product["bad-bytes"].error_code in (ErrorCode.UNSUPPORTED_FORMAT, ErrorCode.DECODE_ERROR)
    url_labels = [by_product[f"url-{i}"].label for i in range(20)]
    assert all(by_product[f"url-{i}"].status is Status.TAGGED for i in range(20))
    assert url_labels == [by_product[f"bytes-{i}"].label for i in range(20)]  # same file, same tag
    assert len({r.timings.batch_size for r in results.values()}) == 1  # all in one batch
    stats = url_fleet.workers[0].control("batching")
    assert stats["stage_seconds"]["fetch"] > 0


def test_the_client_and_cli_accept_urls_and_refuse_other_schemes(url_fleet, image_server) -> None:
    client = url_fleet.client()
    handle = client.submit(url=image_server.url("files/i3.png"))
    assert handle.product_id == "i3.png" and handle.get(timeout=30).status is Status.TAGGED
    handles = client.submit_many([(image_server.url("files/i4.png"), "sku-4")])
    assert handles[0].get(timeout=30).product_id == "sku-4"
    with pytest.raises(ValueError, match="only http and https"):
        client.submit(url="file:///etc/passwd")
    env = {**os.environ, "REDIS_URL": url_fleet.url}
    out = subprocess.run([sys.executable, "-m", "producer", "submit", image_server.url("files/i5.png"), "--wait"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "tagged"
    bad = subprocess.run([sys.executable, "-m", "producer", "submit", "ftp://127.0.0.1/a.png"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "only http and https" in bad.stderr
