"""A host-side proxy that adds the farm's package-index credentials, so builds never see them.

Repository code runs inside builds (an sdist's ``setup.py``, ``postBuild``),
so nothing secret may enter one. When ``BINDER_PIP_INDEX_URL`` carries
credentials (``https://USER:PASSWORD@index.example/simple/``), builds are
given this proxy's URL instead (``http://ADDRESS/simple/``, no credentials):
the proxy forwards GET and HEAD requests for the index and the files its
pages link to on its host (``workers/index_scope.py``), adding the
credentials, rewrites links and redirects that point back at the index so
they go through the proxy too, and answers nothing else (403 for other
paths of the host, which the farm's login might also reach).

The worker's main process starts the proxy before its pool processes
fork, on ``BINDER_PIP_PROXY`` (host:port, reachable from builds:
``127.0.0.1`` for builds on the host network, the bridge's gateway address
otherwise), and holds the port for as long as it runs, so nothing else can
take it in between; a worker whose proxy cannot listen does not start.
Several workers on one host each need a port of their own.
"""

from __future__ import annotations

import base64
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from common.config import Config
from common.errors import ConfigError
from common.service_credentials import is_loopback
from workers.index_scope import IndexScope

log = logging.getLogger(__name__)

TIMEOUT = 60
CHUNK = 1024 * 1024
_REWRITTEN_TYPES = ("text/html", "application/vnd.pypi.simple", "application/json")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-encoding",
                "content-length", "www-authenticate", "set-cookie", "server"}

def has_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def without_credentials(url: str) -> str:
    """``url`` with any user name and password left out."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Upstream:
    """The index's origin and the Authorization header for it."""

    def __init__(self, index_url: str, proxy_origin: str) -> None:
        parts = urlsplit(index_url)
        self.origin = urlunsplit((parts.scheme, urlsplit(without_credentials(index_url)).netloc,
                                  "", "", ""))
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.authorization = f"Basic {token}"
        self.proxy_origin = proxy_origin
        self.scope = IndexScope(self.origin, parts.path)
        self.session = requests.Session()

    def rewrite(self, text: str) -> str:
        return text.replace(self.origin, self.proxy_origin)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the connection closes after each answer
    upstream: _Upstream

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("index proxy: " + format, *args)

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._forward(body=True)

    def _answer(self, status: int, headers: dict[str, str], data: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, body: bool) -> None:
        if not self.path.startswith("/") or "://" in self.path.split("?", 1)[0]:
            self._answer(400, {"Content-Type": "text/plain"}, b"only index paths\n")
            return
        if not self.upstream.scope.allows(self.path):
            self._answer(403, {"Content-Type": "text/plain"},
                         b"only the package index and the files it links to\n")
            return
        try:
            response = self.upstream.session.request(
                "GET" if body else "HEAD", self.upstream.origin + self.path,
                headers={"Authorization": self.upstream.authorization,
                         "Accept": self.headers.get("Accept", "*/*"),
                         "User-Agent": self.headers.get("User-Agent", "binder-index-proxy")},
                allow_redirects=False, stream=True, timeout=TIMEOUT)
        except requests.RequestException as exc:
            log.warning("index proxy: upstream failed: %s", type(exc).__name__)
            self._answer(502, {"Content-Type": "text/plain"}, b"the package index failed\n")
            return
        with response:
            # Header names in any case (http.server writes "Content-type"): the
            # lookups go to requests' case-insensitive headers, not to this copy.
            headers = {k: v for k, v in response.headers.items()
                       if k.lower() not in _HOP_HEADERS | {"location"}}
            location = response.headers.get("Location")
            if location is not None:
                location = without_credentials(location)
                self.upstream.scope.learn_redirect(self.path, location)
                headers["Location"] = self.upstream.rewrite(location)
            content_type = response.headers.get("Content-Type", "").lower()
            page = content_type.startswith(_REWRITTEN_TYPES)
            if page:
                # A page a client kept would lead it to files a restarted proxy never saw
                # linked; revalidating (forwarded unconditionally) shows them again.
                headers = {k: v for k, v in headers.items() if k.lower() != "cache-control"}
                headers["Cache-Control"] = "no-cache"
            if not body:
                self._answer(response.status_code, headers)
            elif page:
                text = response.content.decode("utf-8", "replace")
                self.upstream.scope.learn_page(self.path, content_type, text)
                data = self.upstream.rewrite(text)
                self._answer(response.status_code, headers, data.encode())
            else:
                self.send_response(response.status_code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                for chunk in response.iter_content(CHUNK):
                    self.wfile.write(chunk)


def build_index_url(index_url: str, listen: str) -> str:
    """The index URL builds are given: ``index_url`` itself when it has no credentials,
    else the proxy's equivalent on ``listen`` (no credentials)."""
    if not index_url or not has_credentials(index_url):
        return index_url
    parts = urlsplit(index_url)
    return urlunsplit(("http", listen, parts.path, parts.query, ""))


def check_proxy_reachable(config: Config) -> None:
    """Raise ``ConfigError`` when builds need the proxy and ``BINDER_PIP_PROXY`` is a
    loopback address they cannot reach: builds on the engine's bridge, or on an engine
    on another machine (whose loopback is its own)."""
    if not has_credentials(config.pip_index_url):
        return
    if not is_loopback(urlsplit(f"//{config.pip_proxy}").hostname):
        return
    engine = urlsplit(config.docker_host)
    if engine.scheme == "tcp" and not is_loopback(engine.hostname):
        builds = f"builds on the engine at {config.docker_host}"
    elif config.build_network == "default":
        builds = "builds on the engine's bridge (BINDER_BUILD_NETWORK=default)"
    else:
        return
    raise ConfigError(
        f"BINDER_PIP_PROXY {config.pip_proxy} is this machine's loopback, which {builds} "
        "cannot reach.",
        suggestions=["Set BINDER_PIP_PROXY to an address of this machine that builds reach "
                     "(for the bridge, its gateway: docker network inspect bridge), and "
                     "firewall that port from everything but the builds."])


def start_proxy(index_url: str, listen: str) -> ThreadingHTTPServer | None:
    """Serve the proxy for ``index_url`` on ``listen`` in a daemon thread (when the URL
    carries credentials); ``ConfigError`` when it cannot listen there."""
    if not index_url or not has_credentials(index_url):
        return None
    host, _, port = listen.rpartition(":")
    handler = type("Handler", (_Handler,), {"upstream": _Upstream(index_url, f"http://{listen}")})
    try:
        server = ThreadingHTTPServer((host, int(port)), handler)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"The package index proxy cannot listen on {listen} "
            f"({getattr(exc, 'strerror', None) or exc}).",
            suggestions=["Set BINDER_PIP_PROXY to a free host:port that builds can reach; "
                         "several workers on one host need one each."]) from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="index proxy", daemon=True).start()
    log.info("package index proxy for %s listening on %s", without_credentials(index_url),
             listen)
    return server
