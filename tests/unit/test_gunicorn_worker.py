"""A worker that holds connections lets idle workers accept first; an idle one does not
wait. The thread that answered a kept-alive request serves the next one that comes soon."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from api import gunicorn_worker
from api.gunicorn_worker import SpreadingThreadWorker


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> tuple[SpreadingThreadWorker, Recorder]:
    recorder = Recorder()
    monkeypatch.setattr(gunicorn_worker.time, "sleep",
                        lambda seconds: recorder.events.append(f"sleep {seconds}"))
    monkeypatch.setattr(gunicorn_worker.ThreadWorker, "accept",
                        lambda self, listener: recorder.events.append(f"accept {listener}"))
    made: Any = SpreadingThreadWorker.__new__(SpreadingThreadWorker)  # no arbiter needed
    return made, recorder


def test_an_idle_worker_accepts_at_once(worker: tuple[SpreadingThreadWorker, Recorder]) -> None:
    made, recorder = worker
    made.nr_conns = 0
    made.accept("listener")
    assert recorder.events == ["accept listener"]


def test_a_worker_with_connections_defers_before_accepting(
        worker: tuple[SpreadingThreadWorker, Recorder]) -> None:
    made, recorder = worker
    made.nr_conns = 2
    made.accept("listener")
    assert recorder.events == [f"sleep {gunicorn_worker.ACCEPT_DEFER}", "accept listener"]
    assert 0 < gunicorn_worker.ACCEPT_DEFER < 0.05  # short against a request


class Conn:
    """What lingering reads of a gthread connection: a socket, the parser's buffer."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.is_http2 = False
        self.parser = SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO(buffered)))


@pytest.fixture
def lingering(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, socket.socket, Conn]]:
    made: Any = SpreadingThreadWorker.__new__(SpreadingThreadWorker)
    made.alive, made.nr_conns = True, 1
    made.cfg = SimpleNamespace(threads=4)
    client, server = socket.socketpair()
    try:
        yield made, client, Conn(server)
    finally:
        client.close()
        server.close()


def test_a_next_request_already_sent_is_served_on_the_same_thread(
        lingering: tuple[Any, socket.socket, Conn], monkeypatch: pytest.MonkeyPatch) -> None:
    made, client, conn = lingering
    served: list[bytes] = []

    def handle(self: Any, conn: Conn) -> bool:  # gthread's: one request, keep-alive
        served.append(conn.sock.recv(100))
        if len(served) == 1:
            client.sendall(b"second")  # the client, having read the first answer
        return True
    monkeypatch.setattr(gunicorn_worker.ThreadWorker, "handle", handle)
    client.sendall(b"first")
    assert made.handle(conn) is True
    assert served == [b"first", b"second"]


def test_a_quiet_connection_goes_back_to_the_poller_after_the_linger(
        lingering: tuple[Any, socket.socket, Conn]) -> None:
    made, _, conn = lingering
    started = time.monotonic()
    assert made.next_request_soon(conn) is False
    waited = time.monotonic() - started
    assert gunicorn_worker.LINGER_MS / 1000 * 0.8 <= waited < 1, waited


def test_bytes_read_ahead_are_a_next_request(lingering: tuple[Any, socket.socket, Conn]) -> None:
    made, client, _ = lingering
    assert made.next_request_soon(Conn(client, buffered=b"GET / HTTP/1.1\r\n")) is True


def test_a_closed_connection_is_handed_on_at_once(
        lingering: tuple[Any, socket.socket, Conn]) -> None:
    made, client, conn = lingering
    client.close()
    assert made.next_request_soon(conn) is True  # its handle sees the close and ends it


@pytest.mark.parametrize("state", [{"alive": False}, {"nr_conns": 5}])
def test_no_linger_when_stopping_or_short_of_threads(
        lingering: tuple[Any, socket.socket, Conn], state: dict[str, Any]) -> None:
    """A stopping worker answers and lets go; with more connections than threads, a
    lingering thread could keep another connection's request waiting."""
    made, client, conn = lingering
    client.sendall(b"GET / HTTP/1.1\r\n")
    for key, value in state.items():
        setattr(made, key, value)
    assert made.next_request_soon(conn) is False
