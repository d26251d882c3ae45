"""The tests' API client sends a request again when the server drops it unanswered."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from tests.support.farm import ApiClient

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def serve(drops: int) -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server closing its first ``drops`` connections unanswered, then answering."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def run() -> None:
        for index in range(drops + 1):
            conn, _ = server.accept()
            with conn:
                seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
                if index >= drops:
                    conn.sendall(ANSWER)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    server.close()


@pytest.fixture
def dropping_once() -> Iterator[tuple[str, list[bytes]]]:
    yield from serve(1)


def test_a_request_dropped_unanswered_is_sent_again(dropping_once: tuple[str, list[bytes]]) -> None:
    url, seen = dropping_once
    response = ApiClient(url, "k").start("https://example.org/a/b")
    assert response.status_code == 200
    assert seen == [b"POST /builds/repo HTTP/1.1"] * 2


def test_a_refused_connection_is_not_retried_into_success() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        ApiClient(f"http://127.0.0.1:{port}", "k").request("GET", "/health/")
