"""Image URLs to image bytes, in a pool process: a batch's URLs fetched concurrently, safe by default.

Safety (every refusal is the job's own result, `url_not_allowed`):
- only http and https (wire.urls), and only hosts the operator listed in TAGGER_URL_ALLOWLIST;
- the host is resolved once, every address it resolves to is checked (loopback, private,
  link-local and cloud-metadata, reserved, multicast: refused unless that very host, name or
  address as written in the URL, is listed, or a listed network holds the address), and the
  connection goes to the address that was checked, so DNS cannot answer differently between
  the check and the connect (DNS rebinding);
- redirects are followed by hand, at most `max_redirects`, each new URL checked the same way.

Bounds: a connect and a read timeout, one deadline per job over its retries and redirects, the
byte limit enforced while the body streams in (a Content-Length over it fails at once), image
content types only. Retries, with exponential backoff, only after a timeout or a 5xx status; any
other failure is final at once (`fetch_failed` with the HTTP status, `fetch_timeout`,
`image_too_large`, `unsupported_content_type`).

Connections are kept per (scheme, host, port, address) in urllib3 pools, so a batch of URLs on
one CDN reuses a few keep-alive connections.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urljoin

import urllib3

from wire.errors import ErrorCode, TaggerError
from wire.urls import ImageUrl, parse_image_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECTS = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024
MAX_POOLS = 64  # kept connection pools per process (least recently used go)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
HEADERS = {"Accept": "image/jpeg, image/png, image/webp, image/*;q=0.8", "Accept-Encoding": "identity",
           "User-Agent": "fashion-tagger"}


class FetchError(TaggerError):
    """A URL job's image could not be fetched; `code` is its result's error code."""

    def __init__(self, code: ErrorCode, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable  # a timeout or a 5xx: worth another try within the deadline


class Allowlist:
    """TAGGER_URL_ALLOWLIST: names, suffixes (.example.com), addresses and networks (10.0.0.0/8)."""

    def __init__(self, spec: str) -> None:
        self.names: set[str] = set()  # exact host names and address literals
        self.suffixes: list[str] = []
        self.networks: list[IPNetwork] = []
        for entry in (e.strip().lower().rstrip(".") for e in spec.split(",")):
            if not entry:
                continue
            if entry.startswith(("*.", ".")):
                self.suffixes.append(entry.lstrip("*."))
            elif "/" in entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            else:
                self.names.add(_normal_address(entry) or entry)

    def allows_host(self, host: str) -> bool:
        ip = _ip(host)
        if ip is not None:
            return str(ip) in self.names or any(ip in net for net in self.networks)
        return host in self.names or any(host == s or host.endswith("." + s) for s in self.suffixes)

    def allows_address(self, host: str, ip: IPAddress) -> bool:
        """A public address always; any other only if that very host (the name or the address as written in
        the URL) is listed, or a listed network holds the address. Listing 127.0.0.1 allows
        http://127.0.0.1/..., not every name that resolves there."""
        return address_kind(ip) is None or host in self.names or any(ip in net for net in self.networks)


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is not one to fetch from by default (None: a public unicast address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
                                                     if ip in NAT64 else None)
        if embedded is not None:
            return address_kind(embedded)
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return {"link_local": "link-local (cloud metadata)"}.get(kind, kind)
    return None if ip.is_global else "not public"


@dataclass(frozen=True)
class FetchPolicy:
    allowlist: Allowlist
    max_bytes: int
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    deadline_s: float = 15.0
    retries: int = 2
    max_redirects: int = 3
    backoff_s: float = 0.2  # doubles with each retry


class Fetcher:
    """Fetches image URLs under a FetchPolicy, `threads` at a time, over kept connections."""

    def __init__(self, policy: FetchPolicy, threads: int = 16) -> None:
        self.policy = policy
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch")
        self._threads = threads
        self._pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def fetch_all(self, urls: list[str]) -> Iterator[tuple[int, bytes | FetchError]]:
        """(index, image bytes or the reason there are none) per URL, as each fetch ends."""
        futures = {self._executor.submit(self.fetch_or_error, url): i for i, url in enumerate(urls)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def fetch_or_error(self, url: str) -> bytes | FetchError:
        try:
            return self.fetch(url)
        except FetchError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - whatever a server sends, it fails this job only
            return FetchError(ErrorCode.FETCH_FAILED, f"cannot fetch {_short(url)}: {type(exc).__name__}: {exc}")

    def fetch(self, url: str) -> bytes:
        """The image bytes at `url`, following checked redirects, within the job's deadline."""
        p = self.policy
        deadline = time.monotonic() + p.deadline_s
        for _hop in range(p.max_redirects + 1):
            checked, ip = self.check(url)
            body, location = self._with_retries(checked, ip, deadline)
            if location is None:
                return body
            url = urljoin(url, location)
        raise FetchError(ErrorCode.FETCH_FAILED, f"more than {p.max_redirects} redirects")

    def check(self, url: str) -> tuple[ImageUrl, IPAddress]:
        """The URL's parts and the one address to connect to, or FetchError(url_not_allowed)."""
        try:
            checked = parse_image_url(url)
        except ValueError as exc:
            raise FetchError(ErrorCode.URL_NOT_ALLOWED, str(exc)) from None
        if not self.policy.allowlist.allows_host(checked.host):
            raise FetchError(ErrorCode.URL_NOT_ALLOWED, f"host {checked.host} is not in TAGGER_URL_ALLOWLIST")
        addresses = resolve(checked.host, checked.port)
        for ip in addresses:  # all of them: a rebinding answer may mix a public and a private address
            if not self.policy.allowlist.allows_address(checked.host, ip):
                raise FetchError(ErrorCode.URL_NOT_ALLOWED, f"host {checked.host} resolves to {ip}, a "
                                 f"{address_kind(ip)} address (list it in TAGGER_URL_ALLOWLIST to allow it)")
        return checked, addresses[0]

    def _with_retries(self, url: ImageUrl, ip: IPAddress, deadline: float) -> tuple[bytes, str | None]:
        p = self.policy
        attempt = 0
        while True:
            try:
                return self._get(url, ip, deadline)
            except FetchError as exc:
                pause = p.backoff_s * 2 ** attempt
                if not exc.retryable or attempt >= p.retries or time.monotonic() + pause >= deadline:
                    raise
            time.sleep(pause)
            attempt += 1

    def _get(self, url: ImageUrl, ip: IPAddress, deadline: float) -> tuple[bytes, str | None]:
        """One request: (body, None), or (b"", Location) for a redirect."""
        p = self.policy
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(ErrorCode.FETCH_TIMEOUT, f"no image within the {p.deadline_s:g} s deadline")
        timeout = urllib3.Timeout(connect=min(p.connect_timeout_s, left), read=min(p.read_timeout_s, left))
        try:
            resp = self._pool(url, ip).urlopen("GET", url.target, headers={**HEADERS, "Host": url.host_header},
                                               redirect=False, retries=False, preload_content=False,
                                               release_conn=False, assert_same_host=False, timeout=timeout)
        except urllib3.exceptions.NewConnectionError as exc:  # refused or unreachable (urllib3 files it under timeouts)
            raise FetchError(ErrorCode.FETCH_FAILED, f"cannot connect to {url.host}: {_short(str(exc))}") from None
        except urllib3.exceptions.TimeoutError:
            raise FetchError(ErrorCode.FETCH_TIMEOUT, f"{url.host} did not answer in time", retryable=True) from None
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(ErrorCode.FETCH_FAILED, f"cannot fetch from {url.host}: {_short(str(exc))}") from None
        done = False
        try:
            if resp.status in REDIRECTS and resp.headers.get("Location"):
                return b"", resp.headers["Location"]
            if resp.status != 200:
                raise FetchError(ErrorCode.FETCH_FAILED, f"HTTP {resp.status} from {url.host}",
                                 retryable=resp.status >= 500)
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not ctype.startswith("image/"):
                raise FetchError(ErrorCode.UNSUPPORTED_CONTENT_TYPE,
                                 f"{url.host} answered {ctype or 'no content type'!r}, not an image type")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > p.max_bytes:
                raise _too_large(int(length), p.max_bytes)
            body = self._read(resp, deadline)
            done = True
            return body, None
        finally:
            if not done:
                resp.close()  # unread bytes may follow: the connection is not reused
            resp.release_conn()

    def _read(self, resp: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        """The body, counted while it streams in: never more than max_bytes in memory."""
        chunks, total = [], 0
        try:
            while chunk := resp.read1(READ_CHUNK):
                total += len(chunk)
                if total > self.policy.max_bytes:
                    raise _too_large(total, self.policy.max_bytes, "at least ")
                if time.monotonic() > deadline:
                    raise FetchError(ErrorCode.FETCH_TIMEOUT,
                                     f"the image was still arriving at the {self.policy.deadline_s:g} s deadline")
                chunks.append(chunk)
        except urllib3.exceptions.TimeoutError:
            raise FetchError(ErrorCode.FETCH_TIMEOUT, "the image stopped arriving", retryable=True) from None
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(ErrorCode.FETCH_FAILED, f"the image was cut short: {_short(str(exc))}") from None
        return b"".join(chunks)

    def _pool(self, url: ImageUrl, ip: IPAddress) -> urllib3.HTTPConnectionPool:
        key = (url.scheme, url.host, url.port, str(ip))
        with self._lock:
            pool = self._pools.pop(key, None)
            if pool is None:
                options = {"maxsize": self._threads, "block": False, "retries": False}
                if url.scheme == "https":  # TLS to the checked address, verified against the host name
                    pool = urllib3.HTTPSConnectionPool(str(ip), url.port, server_hostname=url.host,
                                                       assert_hostname=url.host, cert_reqs="CERT_REQUIRED", **options)
                else:
                    pool = urllib3.HTTPConnectionPool(str(ip), url.port, **options)
            self._pools[key] = pool
            while len(self._pools) > MAX_POOLS:
                self._pools.popitem(last=False)[1].close()
            return pool


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, each once (FetchError when it resolves to none)."""
    literal = _ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(ErrorCode.FETCH_FAILED, f"cannot resolve {host}: {exc}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not found:
        raise FetchError(ErrorCode.FETCH_FAILED, f"{host} resolves to no address")
    return list(dict.fromkeys(found))


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal_address(text: str) -> str | None:
    ip = _ip(text)
    return None if ip is None else str(ip)


def _too_large(size: int, limit: int, prefix: str = "") -> FetchError:
    return FetchError(ErrorCode.IMAGE_TOO_LARGE, f"the image is {prefix}{size:,} bytes; the limit is {limit:,}")


def _short(text: str) -> str:
    return " ".join(text.split())[:200]
