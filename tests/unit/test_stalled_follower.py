"""A client that stops reading a followed log loses it within the write bound, under a
real gunicorn: the thread and the follower slot are given back, not held for good. A
client that reads keeps its stream past the bound."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import free_port
from tests.support.processes import wait_until

WRITE_SECONDS = 2
REQUEST = b"GET /builds/o-r/logs?follow=1 HTTP/1.1\r\nHost: farm\r\n\r\n"


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The port of a gunicorn serving the stalled-follow app, and its file of closes."""
    port = free_port()
    closed = tmp_path / "closed"
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    environ = {**os.environ, "STALLED_FOLLOW_CLOSED": str(closed),
               "PROMETHEUS_MULTIPROC_DIR": str(metrics),
               "STALLED_FOLLOW_WRITE_SECONDS": str(WRITE_SECONDS)}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:api.gunicorn_config",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
         "tests.support.stalled_follow_app:app()"],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _connects(port), 30), "gunicorn did not start"
        yield port, closed
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("gunicorn did not stop")


def test_a_client_that_stops_reading_a_followed_log_is_let_go(
        served: tuple[int, Path]) -> None:
    port, closed = served
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(REQUEST)
        # The client reads nothing more, and stays connected: its buffers fill, and
        # the follower's next write waits for it.
        assert wait_until(closed.exists, WRITE_SECONDS + 20), \
            "the follower still writes to a client that stopped reading"
        assert closed.read_text() == "closed\n"


def test_a_client_that_reads_keeps_its_stream_past_the_bound(
        served: tuple[int, Path]) -> None:
    port, closed = served
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(REQUEST)
        received = 0
        until = time.monotonic() + WRITE_SECONDS * 2
        while time.monotonic() < until:
            chunk = client.recv(1 << 16)
            assert chunk, "the stream ended under a client that reads"
            received += len(chunk)
        assert received > 2_000_000  # megabytes went by, the stream going on
        assert not closed.exists()
