"""A real local HTTP server for URL jobs: image files, and routes that misbehave the way servers do.

    server = ImageServer({"a.jpg": jpeg_bytes}).start()     # in a thread (tests)
    server.url("files/a.jpg")                               # http://127.0.0.1:<port>/files/a.jpg
    python -m devtools.image_server FOLDER --port 8000       # in its own process (the benchmark)

Routes (keep-alive HTTP/1.1):
    /files/NAME                 the file, with its image content type
    /status/CODE                that status, a text body
    /slow/SECONDS/NAME          the file after a pause before the headers
    /drip/NAME                  the headers, then the body a few bytes at a time, forever slow
    /flaky/N/NAME               503 for the first N requests to this path, then the file
    /huge/BYTES                 image/png of BYTES bytes, streamed without a Content-Length
    /text/NAME                  the file as text/html
    /redirect?to=URL            302 to URL
Every request is counted in `hits` by path.
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PNG_HEAD = b"\x89PNG\r\n\x1a\n"
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle would hold the body ~40 ms
    server: "_Server"

    def log_message(self, *args: object) -> None:  # quiet: tests and the benchmark read results, not logs
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        self.server.owner.hits[parts.path] += 1
        route, _, rest = parts.path.lstrip("/").partition("/")
        try:
            getattr(self, f"_{route}", self._not_found)(rest, parts.query)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: what slow routes expect
            pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, name: str, ctype: str | None = None) -> None:
        data = self.server.owner.files.get(name)
        if data is None:
            return self._not_found(name, "")
        self._send(200, data, ctype or content_type(name))

    def _not_found(self, _rest: str, _query: str) -> None:
        self._send(404, b"not found", "text/plain")

    def _files(self, rest: str, _query: str) -> None:
        self._file(rest)

    def _status(self, rest: str, _query: str) -> None:
        self._send(int(rest), f"status {rest}".encode(), "text/plain")

    def _slow(self, rest: str, _query: str) -> None:
        seconds, _, name = rest.partition("/")
        time.sleep(float(seconds))
        self._file(name)

    def _drip(self, rest: str, _query: str) -> None:
        data = self.server.owner.files.get(rest, PNG_HEAD * 100)
        self.send_response(200)
        self.send_header("Content-Type", content_type(rest))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 8):
            self.wfile.write(data[i:i + 8])
            self.wfile.flush()
            time.sleep(0.2)

    def _flaky(self, rest: str, _query: str) -> None:
        failures, _, name = rest.partition("/")
        if self.server.owner.hits[f"/flaky/{rest}"] <= int(failures):
            return self._send(503, b"try again", "text/plain")
        self._file(name)

    def _huge(self, rest: str, _query: str) -> None:
        size = int(rest)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")  # no length: the body ends when the connection does
        self.end_headers()
        self.close_connection = True
        block = PNG_HEAD + bytes(64 * 1024 - len(PNG_HEAD))
        sent = 0
        while sent < size:
            chunk = block[: size - sent]
            self.wfile.write(chunk)
            sent += len(chunk)

    def _text(self, rest: str, _query: str) -> None:
        self._file(rest, "text/html")

    def _redirect(self, _rest: str, query: str) -> None:
        self.send_response(302)
        self.send_header("Location", parse_qs(query).get("to", ["/"])[0])
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "ImageServer"

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no news here
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class ImageServer:
    """The server, on 127.0.0.1 and a free port, in a background thread; `close()` stops it."""

    def __init__(self, files: dict[str, bytes] | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.hits: Counter[str] = Counter()
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="image-server", daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def start(self) -> "ImageServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ImageServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve the image files of a folder (and the test routes) over HTTP.")
    p.add_argument("folder", type=Path, help="its files are served as /files/NAME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    files = {f.name: f.read_bytes() for f in sorted(args.folder.iterdir()) if f.is_file()}
    server = ImageServer(files, args.host, args.port)
    print(f"serving {len(files)} files at {server.base}/files/", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
