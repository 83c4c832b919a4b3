"""Image URLs a job may carry instead of the bytes: what both sides check before anything is fetched.

Only http and https, with a host, no user:password part, at most MAX_URL_CHARS. The client refuses
anything else before sending; the worker checks again (other senders exist) and also applies its
allowlist and address checks (worker.pool.fetch).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
MAX_URL_CHARS = 2048


@dataclass(frozen=True)
class ImageUrl:
    """A checked URL, split into what a fetch needs."""

    scheme: str
    host: str  # lower case, without the brackets of an IPv6 literal
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse_image_url(url: str) -> ImageUrl:
    """The URL's parts, or ValueError saying why it can never be fetched."""
    if not isinstance(url, str) or not url:
        raise ValueError("the image URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"the image URL has {len(url):,} characters; the limit is {MAX_URL_CHARS:,}")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError("the image URL holds whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"only http and https image URLs are fetched, not {scheme or 'a relative URL'!r}")
    if not parts.hostname:
        raise ValueError("the image URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the image URL may not carry a user name or password")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ImageUrl(scheme, parts.hostname.lower().rstrip("."), port or SCHEMES[scheme], target)


def looks_like_url(text: str) -> bool:
    """Whether a string given as an image is meant as a URL (it names a scheme) rather than a file path."""
    return "://" in text[:16]
