"""``workers/providers/http.py``: every hop checked, connections pinned to checked addresses.

Host names here resolve through a stubbed resolver, so nothing looks up a
name or connects anywhere but the loopback servers the tests start.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import workers.providers.http as http
from common.config import Config, load_config
from tests.support.provider_servers import FakeService, Request, json_answer, redirect
from workers.providers.base import FetchLimits
from workers.providers.http import HttpClient, ProviderError

#: name -> addresses the stubbed resolver answers
NAMES: dict[str, list[str]] = {}


@pytest.fixture(autouse=True)
def stub_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return NAMES[host]

    monkeypatch.setattr(http, "resolve_host", resolve)
    yield asked


class Echo(FakeService):
    """Answers every GET with the Host and Authorization headers it received."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Any] = {}

    def answer(self, request: Request) -> Any:
        if request.path in self.routes:
            return self.routes[request.path]
        return json_answer({"host": request.headers.get("host"),
                            "authorization": request.headers.get("authorization")})


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo().start()
    yield server
    server.stop()


def client(config: Config, **tokens: str) -> HttpClient:
    limits = FetchLimits(timeout=10, max_bytes=1024 * 1024, max_files=10,
                         tokens={host.replace("_", "."): t for host, t in tokens.items()})
    return HttpClient(config, limits, "the service")


def test_a_host_name_is_fetched_at_its_checked_address(echo: Echo,
                                                       stub_resolver: list[str]) -> None:
    NAMES["api.test"] = ["127.0.0.1"]
    port = echo.host.rsplit(":", 1)[1]
    config = load_config(environ={}, allowed_source_hosts=(f"api.test:{port}",))
    answer = client(config).get_json(f"http://api.test:{port}/record", "the record")
    assert answer == {"host": f"api.test:{port}", "authorization": None}
    assert stub_resolver == ["api.test"]


def test_a_redirect_to_a_private_address_is_refused_before_connecting(
        echo: Echo, stub_resolver: list[str]) -> None:
    NAMES["files.test"] = ["10.0.0.5"]
    echo.routes["/record"] = redirect("https://files.test/blob")
    config = load_config(environ={}, allowed_source_hosts=(echo.host,))
    with pytest.raises(ProviderError, match="files.test leads to a loopback, private or "
                                            "link-local address"):
        client(config).get_json(f"{echo.url}/record", "the record")
    assert stub_resolver == ["files.test"]


def test_a_token_goes_only_to_its_own_host(echo: Echo) -> None:
    other = Echo().start()
    try:
        echo.routes["/record"] = redirect(f"{other.url}/elsewhere")
        config = load_config(environ={}, allowed_source_hosts=(echo.host, other.host))
        tokened = client(config, **{echo.host.replace(".", "_"): "secret"})
        assert tokened.get_json(f"{echo.url}/direct", "x")["authorization"] == "Bearer secret"
        assert tokened.get_json(f"{echo.url}/record", "x")["authorization"] is None
    finally:
        other.stop()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    """An https server on 127.0.0.1 whose certificate is for ``secure.test``; the server
    names (SNI) clients asked for."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=secure.test",
                    "-addext", "subjectAltName=DNS:secure.test"],
                   check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert, names
    server.shutdown()
    server.server_close()


def test_https_is_pinned_yet_checks_the_certificate_of_the_host_name(
        tls_server: tuple[int, Path, list[str | None]]) -> None:
    port, cert, names = tls_server
    NAMES["secure.test"] = ["127.0.0.1"]
    NAMES["other.test"] = ["127.0.0.1"]
    config = load_config(environ={}, allowed_source_hosts=("secure.test", "other.test"))
    limits = FetchLimits(timeout=10, max_bytes=1024 * 1024, max_files=10)
    trusting = HttpClient(config, limits, "the service", verify=str(cert))
    assert trusting.get_json(f"https://secure.test:{port}/r", "x") == {"ok": True}
    assert names == ["secure.test"]  # connected to 127.0.0.1, but asked for secure.test
    with pytest.raises(ProviderError, match="could not be reached"):
        trusting.get_json(f"https://other.test:{port}/r", "x")  # the certificate is not its
