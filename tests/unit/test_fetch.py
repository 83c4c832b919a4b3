"""worker.pool.fetch against a real local HTTP server (devtools.image_server): every limit and safety rule."""

from __future__ import annotations

import ipaddress
import time

import pytest

from devtools.image_server import ImageServer
from wire.errors import ErrorCode
from worker.pool.fetch import Allowlist, Fetcher, FetchError, FetchPolicy, address_kind

JPEG = b"\xff\xd8\xff\xe0" + bytes(2000)
LIMIT = 1_000_000


@pytest.fixture(scope="module")
def server():
    with ImageServer({"a.jpg": JPEG, "b.png": b"\x89PNG\r\n\x1a\n" + bytes(100)}) as s:
        yield s


def fetcher(allow: str = "127.0.0.1", **policy) -> Fetcher:
    options = dict(read_timeout_s=0.5, deadline_s=2.0, retries=2, backoff_s=0.05, max_redirects=2) | policy
    return Fetcher(FetchPolicy(Allowlist(allow), LIMIT, **options), threads=4)


def refused(f: Fetcher, url: str) -> FetchError:
    result = f.fetch_or_error(url)
    assert isinstance(result, FetchError), result
    return result


def test_an_allowed_host_gets_its_image_over_a_kept_connection(server) -> None:
    f = fetcher()
    assert f.fetch(server.url("files/a.jpg")) == JPEG
    assert f.fetch(server.url("files/b.png")).startswith(b"\x89PNG")
    assert len(f._pools) == 1  # both over one pool for (http, 127.0.0.1, port)


def test_hosts_not_listed_and_schemes_other_than_http_are_refused(server) -> None:
    port = server.url("").split(":")[-1].rstrip("/")
    before = server.hits["/files/a.jpg"]
    for url in (f"http://localhost:{port}/files/a.jpg", f"http://127.0.0.2:{port}/files/a.jpg",
                "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "ftp://127.0.0.1/a.jpg",
                "gopher://127.0.0.1/", "/files/a.jpg", f"http://user:pw@127.0.0.1:{port}/files/a.jpg"):
        err = refused(fetcher(), url)
        assert err.code is ErrorCode.URL_NOT_ALLOWED, (url, err)
    assert server.hits["/files/a.jpg"] == before  # nothing was fetched for any of them
    assert refused(fetcher(allow=""), server.url("files/a.jpg")).code is ErrorCode.URL_NOT_ALLOWED


def test_a_name_that_resolves_to_a_private_address_is_refused_unless_that_host_is_listed(server) -> None:
    port = server.url("").split(":")[-1].rstrip("/")
    url = f"http://localhost:{port}/files/a.jpg"
    err = refused(fetcher(allow="127.0.0.1,.localhost"), url)  # allowed by suffix, but it resolves to loopback
    assert err.code is ErrorCode.URL_NOT_ALLOWED and "loopback" in str(err)
    assert fetcher(allow="localhost").fetch(url) == JPEG  # that very host listed
    assert fetcher(allow=".localhost,127.0.0.0/8").fetch(url) == JPEG  # or its network


def test_a_redirect_to_a_private_address_is_refused_and_redirects_are_limited(server) -> None:
    port = server.url("").split(":")[-1].rstrip("/")
    f = fetcher(allow="127.0.0.1,.localhost")
    err = refused(f, server.url(f"redirect?to=http://localhost:{port}/files/a.jpg"))
    assert err.code is ErrorCode.URL_NOT_ALLOWED and "resolves to 127.0.0.1, a loopback address" in str(err)
    err = refused(f, server.url("redirect?to=file:///etc/passwd"))
    assert err.code is ErrorCode.URL_NOT_ALLOWED
    assert f.fetch(server.url("redirect?to=/files/a.jpg")) == JPEG  # an allowed target is followed
    hops = "/files/a.jpg"
    for _ in range(3):
        hops = "/redirect?to=" + hops.replace("?", "%3F").replace("=", "%3D")
    assert refused(f, server.url(hops)).code is ErrorCode.FETCH_FAILED  # 3 redirects, 2 allowed


def test_status_errors_fail_with_their_status_and_only_5xx_is_retried(server) -> None:
    f = fetcher()
    err = refused(f, server.url("status/404"))
    assert err.code is ErrorCode.FETCH_FAILED and "HTTP 404" in str(err) and server.hits["/status/404"] == 1
    err = refused(f, server.url("status/500"))
    assert err.code is ErrorCode.FETCH_FAILED and "HTTP 500" in str(err) and server.hits["/status/500"] == 3
    assert f.fetch(server.url("flaky/2/a.jpg")) == JPEG and server.hits["/flaky/2/a.jpg"] == 3


def test_slow_servers_time_out_within_the_deadline(server) -> None:
    f = fetcher()
    t = time.monotonic()
    err = refused(f, server.url("slow/1.5/a.jpg"))
    assert err.code is ErrorCode.FETCH_TIMEOUT and time.monotonic() - t < 2.5
    assert server.hits["/slow/1.5/a.jpg"] >= 2  # a timeout is retried
    t = time.monotonic()
    err = refused(f, server.url("drip/a.jpg"))  # every read in time, the whole body never
    assert err.code is ErrorCode.FETCH_TIMEOUT and time.monotonic() - t < 2.5


def test_oversize_and_wrong_content_types_are_refused_while_streaming(server) -> None:
    f = fetcher()
    err = refused(f, server.url(f"huge/{50 * LIMIT}"))  # no Content-Length: counted as it streams
    assert err.code is ErrorCode.IMAGE_TOO_LARGE and "the limit is 1,000,000" in str(err)
    server.files["big.png"] = b"\x89PNG\r\n\x1a\n" + bytes(LIMIT)
    assert refused(f, server.url("files/big.png")).code is ErrorCode.IMAGE_TOO_LARGE  # by its Content-Length
    err = refused(f, server.url("text/a.jpg"))
    assert err.code is ErrorCode.UNSUPPORTED_CONTENT_TYPE and "text/html" in str(err)
    assert f.fetch(server.url("files/a.jpg")) == JPEG  # the connection pool survived all of it


def test_a_batch_of_urls_is_fetched_concurrently(server) -> None:
    f = fetcher()
    urls = [server.url("slow/0.3/a.jpg")] * 8 + [server.url("status/404")]
    t = time.monotonic()
    got = dict(f.fetch_all(urls))
    assert time.monotonic() - t < 1.5  # 8 x 0.3 s one after the other would be 2.4 s
    assert [got[i] for i in range(8)] == [JPEG] * 8 and isinstance(got[8], FetchError)


def test_address_kinds_cover_metadata_private_and_embedded_ipv4() -> None:
    kind = lambda a: address_kind(ipaddress.ip_address(a))  # noqa: E731
    assert kind("169.254.169.254") == "link-local (cloud metadata)"
    assert kind("10.1.2.3") == kind("192.168.0.1") == kind("fd00:ec2::254") == "private"
    assert kind("127.0.0.1") == kind("::1") == kind("::ffff:127.0.0.1") == kind("64:ff9b::7f00:1") == "loopback"
    assert kind("100.64.0.1") is not None and kind("0.0.0.0") is not None and kind("224.0.0.1") is not None
    assert kind("93.184.216.34") is None and kind("2606:4700::1111") is None
    a = Allowlist(" cdn.example.com, *.img.example.net ,10.0.0.0/8,")
    assert a.allows_host("cdn.example.com") and not a.allows_host("x.cdn.example.com")
    assert a.allows_host("img.example.net") and a.allows_host("a.b.img.example.net")
    assert not a.allows_host("evilimg.example.net") and a.allows_host("10.9.9.9") and not a.allows_host("11.0.0.1")
