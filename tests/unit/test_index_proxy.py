"""``workers/index_proxy.py``: the credentials stay on the host, builds get a URL without them.

An index that wants Basic credentials is served on loopback; the proxy
answers for it on another loopback port.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner

from common.config import load_config
from common.errors import ConfigError
from workers.cli import main, server
from workers.index_proxy import (
    build_index_url,
    check_proxy_reachable,
    start_proxy,
    without_credentials,
)

USER, PASSWORD = "farm", "s3cret/with:odd@chars"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def index() -> Iterator[tuple[str, list[str]]]:
    """An index at http://127.0.0.1:PORT/root/simple/ that wants credentials; yields its
    origin and the Authorization headers it saw."""
    seen: list[str] = []
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.headers.get("Authorization", ""))
            origin = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.end_headers()
            elif self.path == "/root/simple/tinypkg/":
                body = (f'<a href="{origin}/root/packages/tinypkg-1.0.whl">tinypkg</a>'
                        '<a href="../../packages/tinypkg-0.9.tar.gz#sha256=00">older</a>'
                        '<a href="https://files.example/other.whl">elsewhere</a>').encode()
                self.send_response(200)
                self.send_header("Content-type", "text/html")  # as http.server writes it
                self.send_header("Cache-Control", "max-age=600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith(("/root/packages/", "/admin/")):
                body = b"PK" + b"\0" * 100_000
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/root/simple/moved/":
                self.send_response(301)
                self.send_header("location", f"{origin}/root/simple/tinypkg/")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def raw_status(listen: str, method: str, path: str) -> int:
    """The status the proxy answers ``method path``, the path sent as written (no client
    normalises it first)."""
    with socket.create_connection(("127.0.0.1", int(listen.split(":")[1]))) as sock:
        sock.sendall(f"{method} {path} HTTP/1.0\r\n\r\n".encode())
        return int(sock.recv(100).split()[1])


def test_urls_without_credentials_are_given_to_builds_as_they_are() -> None:
    assert build_index_url("https://pypi.example/simple/", "127.0.0.1:3141") == \
        "https://pypi.example/simple/"
    assert start_proxy("https://pypi.example/simple/", "127.0.0.1:3141") is None
    assert build_index_url("https://u:p@pypi.example/root/simple/", "127.0.0.1:3141") == \
        "http://127.0.0.1:3141/root/simple/"
    assert without_credentials("https://u:p@[::1]:8443/x?q=1") == "https://[::1]:8443/x?q=1"


def test_the_proxy_adds_the_credentials_and_rewrites_links(
        index: tuple[str, list[str]]) -> None:
    origin, seen = index
    quoted = PASSWORD.replace("/", "%2F").replace(":", "%3A").replace("@", "%40")
    secret_url = f"{origin.replace('://', f'://{USER}:{quoted}@')}/root/simple/"
    listen = f"127.0.0.1:{free_port()}"
    server = start_proxy(secret_url, listen)
    assert server is not None
    try:
        visible = build_index_url(secret_url, listen)
        assert visible == f"http://{listen}/root/simple/" and PASSWORD not in visible
        page = requests.get(f"{visible}tinypkg/", timeout=10)
        assert page.status_code == 200
        assert f'href="http://{listen}/root/packages/tinypkg-1.0.whl"' in page.text
        assert 'href="https://files.example/other.whl"' in page.text  # other hosts untouched
        # a client revalidates through the proxy, which so learns the page's links again
        assert page.headers["Cache-Control"] == "no-cache"
        wheel = requests.get(f"http://{listen}/root/packages/tinypkg-1.0.whl", timeout=10)
        assert wheel.content == b"PK" + b"\0" * 100_000
        moved = requests.get(f"{visible}moved/", allow_redirects=False, timeout=10)
        assert moved.status_code == 301
        assert moved.headers["Location"] == f"http://{listen}/root/simple/tinypkg/"
        assert requests.get(f"{visible}nothing/", timeout=10).status_code == 404
        assert all(header.startswith("Basic ") for header in seen)
        for answer in (page, wheel, moved):
            assert PASSWORD not in str(answer.headers) and PASSWORD not in answer.text
    finally:
        server.shutdown()
        server.server_close()


def test_only_gets_for_the_index_host(index: tuple[str, list[str]]) -> None:
    origin, _ = index
    listen = f"127.0.0.1:{free_port()}"
    server = start_proxy(origin.replace("://", f"://{USER}:x@") + "/root/simple/", listen)
    assert server is not None
    try:
        assert requests.post(f"http://{listen}/root/simple/", timeout=10).status_code == 501
        with socket.create_connection(("127.0.0.1", int(listen.split(":")[1]))) as sock:
            sock.sendall(b"GET http://evil.example/x HTTP/1.0\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.0 400")
    finally:
        server.shutdown()
        server.server_close()


def test_a_taken_port_stops_the_worker_with_a_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"cannot listen on {listen}"):
            start_proxy("https://u:p@pypi.example/simple/", listen)


def test_only_the_index_and_the_files_it_links_to(index: tuple[str, list[str]]) -> None:
    """Other paths of the index's host are not fetched with the farm's credentials."""
    origin, seen = index
    listen = f"127.0.0.1:{free_port()}"
    server = start_proxy(origin.replace("://", f"://{USER}:{quote(PASSWORD, safe='')}@")
                         + "/root/simple", listen)
    assert server is not None
    proxy = f"http://{listen}"
    try:
        for path in ("/admin/secret", "/root/packages/unlisted.whl", "/root/simplex/",
                     "/root/simple/../../admin/secret", "/root/simple/%2e%2e/%2E%2E/admin/x",
                     "/root/simple/..%2F..%2Fadmin/x"):
            for method in ("GET", "HEAD"):
                assert raw_status(listen, method, path) == 403, (method, path)
        assert seen == []
        assert requests.get(f"{proxy}/root/simple/tinypkg/", timeout=10).status_code == 200
        for linked in ("/root/packages/tinypkg-1.0.whl", "/root/packages/tinypkg-0.9.tar.gz",
                       "/root/packages/tinypkg-1.0.whl.metadata"):
            assert requests.get(proxy + linked, timeout=10).status_code == 200, linked
        assert requests.get(f"{proxy}/root/packages/unlisted.whl", timeout=10).status_code \
            == 403
        assert requests.get(f"{proxy}/root/simple", timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_loopback_proxy_builds_cannot_reach_is_refused_as_the_worker_starts(
        tmp_path: Path) -> None:
    """Builds on the engine's bridge, or on an engine on another machine, would find
    nothing on this machine's loopback: every requirements install would fail."""
    index = "https://farm:secret@index.example/simple/"
    bridge = load_config(environ={}, pip_index_url=index, build_network="default")
    with pytest.raises(ConfigError) as refused:
        check_proxy_reachable(bridge)
    assert refused.value.message == (
        "BINDER_PIP_PROXY 127.0.0.1:3141 is this machine's loopback, which builds on the "
        "engine's bridge (BINDER_BUILD_NETWORK=default) cannot reach.")
    for name in ("ca", "cert", "key"):
        (tmp_path / name).write_text("PEM")
    remote = load_config(environ={}, pip_index_url=index, build_network="host",
                         docker_host="tcp://docker-host-2.example:2376",
                         **{f"docker_tls_{name}": str(tmp_path / name)
                            for name in ("ca", "cert", "key")})
    with pytest.raises(ConfigError, match="builds on the engine at tcp://docker-host-2"):
        check_proxy_reachable(remote)
    check_proxy_reachable(bridge.replace(pip_proxy="172.17.0.1:3141"))
    check_proxy_reachable(bridge.replace(build_network="host"))
    check_proxy_reachable(bridge.replace(pip_index_url="https://index.example/simple/"))


def test_the_worker_refuses_that_proxy_before_starting(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(server, "_exec", lambda argv, config: pytest.fail("started"))
    monkeypatch.setenv("BINDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BINDER_API_KEY", "k")
    monkeypatch.setenv("BINDER_PIP_INDEX_URL", "https://farm:secret@index.example/simple/")
    monkeypatch.setenv("BINDER_BUILD_NETWORK", "default")
    result = CliRunner().invoke(main, ["worker", "--docker-host", "unix:///tmp/d.sock"])
    assert result.exit_code != 0
    assert "BINDER_PIP_PROXY 127.0.0.1:3141 is this machine's loopback" in result.output
