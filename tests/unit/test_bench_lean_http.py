"""``bench/api_reads.py``'s load generator: ``LeanHTTP`` reads each answer whole on one
kept-alive connection, and refuses an answer it cannot frame."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from bench.api_reads import LeanHTTP


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep the connection open between requests
    connections: set[tuple[str, int]] = set()

    def do_GET(self) -> None:
        Handler.connections.add(self.client_address)
        if self.path == "/unframed":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"no length")
            self.close_connection = True
            return
        body = f'{{"path": "{self.path}"}}'.encode()
        self.send_response(200 if self.path.startswith("/builds/") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.connections.clear()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_answers_arrive_whole_on_one_connection(server: str) -> None:
    client = LeanHTTP(server)
    try:
        answers = [client.get(f"/builds/b{index}") for index in range(3)]
        missing = client.get("/nothing")
    finally:
        client.close()
    assert answers == [(200, f'{{"path": "/builds/b{index}"}}'.encode()) for index in range(3)]
    assert missing == (404, b'{"path": "/nothing"}')
    assert len(Handler.connections) == 1


def test_an_answer_without_a_length_is_refused(server: str) -> None:
    client = LeanHTTP(server)
    try:
        with pytest.raises(ConnectionError, match="no Content-Length"):
            client.get("/unframed")
        # The server closed the connection: an end of stream or a reset, never an answer.
        with pytest.raises(ConnectionError):
            client.get("/builds/after-close")
    finally:
        client.close()
