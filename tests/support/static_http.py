"""Serving a directory over HTTP on 127.0.0.1, for hermetic tests."""

from __future__ import annotations

import base64
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _QuietHandler(SimpleHTTPRequestHandler):
    """A static file handler that does not write every request to stderr."""

    #: the Authorization header every request must carry (None: none needed)
    authorization: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def send_head(self) -> Any:
        if self.authorization and self.headers.get("Authorization") != self.authorization:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="index"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()


class _LoggingHandler(_QuietHandler):
    """Also appends each request's method and path to ``access_log``."""

    access_log: list[str]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.access_log.append(f"{self.command} {self.path} {code}")


class _Server(ThreadingHTTPServer):
    """Says nothing of a client that hung up mid-file (an installer that had enough)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_directory(root: Path, credentials: tuple[str, str] | None = None,
                    access_log: list[str] | None = None) -> Iterator[str]:
    """Serve ``root`` on a free loopback port; yield its base URL (no trailing slash).

    With ``credentials`` (user, password) every request needs them (HTTP Basic).
    With ``access_log``, every request is appended to it as ``METHOD PATH
    STATUS``. The server runs in a daemon thread and is shut down when the
    block ends.
    """
    attributes: dict[str, Any] = {}
    base: type[_QuietHandler] = _QuietHandler
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        attributes["authorization"] = f"Basic {token}"
    if access_log is not None:
        base = _LoggingHandler
        attributes["access_log"] = access_log
    handler_class = type("Handler", (base,), attributes) if attributes else base
    handler = functools.partial(handler_class, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=f"serve {root}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
