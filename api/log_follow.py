"""Following one attempt of a build until it ends: its new lines as they are stored,
keep-alives while it is quiet, and its record once it has ended with every line sent.

The log stream (``api/logs.py``, Server-Sent Events) and BinderHub's event stream
(``api/binderhub.py``) follow builds alike and only render what ``follow`` yields
in their own words.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from common import build_store, log_store
from common.errors import BinderError, TooManyFollowers
from common.models import BuildRecord, Status

#: Longest wait for a new line (a new line ends the wait at once) or the end.
POLL_SECONDS = 0.25
#: How often a follower whose build prints nothing reads the build and its log.
IDLE_READ_SECONDS = 1.0
#: A follower is closed after this long even if the build still runs; clients
#: resume (the log stream with Last-Event-ID) or look the build up.
FOLLOW_MAX_SECONDS = 3600
#: Longest one write of a streamed log may wait for its client to take it: a client
#: that stays connected but reads nothing is let go then (its thread and follower slot
#: given back) instead of holding them for as long as it likes.
WRITE_SECONDS = 60.0
#: Threads of an API process that never follow a log: a follower holds its thread
#: for as long as the build runs, and reads must not wait for builds to end.
KEPT_THREADS = 2

_following = 0
_following_lock = threading.Lock()


def take_follower_slot(threads: int) -> Callable[[], None]:
    """Count one more response of this process following a log; returns what counts
    it out again (call it once, when the response closes).

    Raises ``TooManyFollowers`` (503) when ``threads - KEPT_THREADS`` (at least one)
    already follow: one more would leave the process's other requests waiting.
    """
    global _following
    limit = max(1, threads - KEPT_THREADS)
    with _following_lock:
        if _following >= limit:
            raise TooManyFollowers(
                f"This API process is following {_following} build logs, all it may "
                f"beside its other requests.",
                suggestions=["Retry in a few seconds (Retry-After), or read the log without "
                             "following it.",
                             "Operators: more API threads (BINDER_API_THREADS) or workers "
                             "(BINDER_API_WORKERS) follow more logs at once."])
        _following += 1
    released = threading.Event()

    def give_back() -> None:
        global _following
        if released.is_set():
            return
        released.set()
        with _following_lock:
            _following -= 1
    return give_back


def client_left(environ: Mapping[str, Any]) -> Callable[[], bool]:
    """What tells whether the client of this request closed its connection.

    gunicorn passes the connection's socket in the WSGI environ; a peek that
    reads end-of-file says the client is gone (a next request waiting on the
    connection reads as data, not as gone). A follower that asks it each poll
    gives its thread back within a poll of the client leaving, not at its next
    write (the keep-alive, seconds later). A TLS socket cannot be peeked at:
    there the next write finds out, as without gunicorn.
    """
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return lambda: False

    def left() -> bool:
        # Polled first: a socket with a timeout (``bound_writes``) waits that long for
        # something to read before it peeks, whatever MSG_DONTWAIT says.
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False  # nothing to read: the client is still there
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, TimeoutError):
            return False
        except OSError:
            return True  # reset or closed under us
    return left


def bound_writes(environ: Mapping[str, Any]) -> Callable[[], None]:
    """Bound each write of this response to ``WRITE_SECONDS``; returns what undoes it
    (call it once, when the response closes).

    gunicorn writes a response to a blocking socket without a timeout: to a client
    that stopped reading, a write of a streamed log waits for good, past the end of
    the build and ``FOLLOW_MAX_SECONDS`` (the follower only runs between writes),
    and ``client_left`` never sees it go. With the bound the write fails, and
    gunicorn closes the connection and the response. Only HTTP/1 connections: an
    HTTP/2 socket carries other requests too.
    """
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or \
            not str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/1"):
        return lambda: None
    before = sock.gettimeout()
    sock.settimeout(WRITE_SECONDS)

    def unbound() -> None:
        with contextlib.suppress(OSError):  # closed meanwhile: nothing to undo
            sock.settimeout(before)
    return unbound


@dataclass(frozen=True)
class Lines:
    """New lines of the log, in order: (line number, text)."""

    lines: list[tuple[int, str]]


@dataclass(frozen=True)
class KeepAlive:
    """Nothing was sent for the keep-alive period: idle proxies close quiet streams."""


@dataclass(frozen=True)
class Ended:
    """The attempt ended and every line of it was yielded; ``record`` says how."""

    record: BuildRecord


@dataclass(frozen=True)
class Failed:
    """The store could not be read; following stops."""

    error: BinderError


Event = Lines | KeepAlive | Ended | Failed


def follow(name: str, build_id: str, after: int, keepalive_seconds: float,
           left: Callable[[], bool]) -> Iterator[Event]:
    """The events of attempt ``build_id`` of ``name`` from line ``after`` on.

    Ends after ``Ended`` or ``Failed``; ends without either after
    ``FOLLOW_MAX_SECONDS`` while the build still runs, or as soon as ``left()``
    says the client is gone (``client_left``).
    """
    started = last_sent = time.monotonic()
    ended: BuildRecord | None = None
    end_read_at: float | None = None
    woke: bool | None = None  # what the last wait saw: a new line, none, or could not tell
    next_read = started
    while time.monotonic() - started < FOLLOW_MAX_SECONDS:
        if left():
            return
        # A quiet build's stream says there is nothing new: the store is asked only
        # now and then (a build ended from outside, lines a Redis outage kept out of
        # the stream), not after every wait, so idle followers cost the store little.
        if woke is not False or end_read_at is not None or ended is not None \
                or time.monotonic() >= next_read:
            try:
                current = build_store.find_attempt(name, build_id)
                lines = log_store.read_lines(build_id, after, log_store.READ_LINES)
            except BinderError as exc:
                yield Failed(exc)
                return
            next_read = time.monotonic() + IDLE_READ_SECONDS
            if lines:
                end_read_at = time.monotonic() if log_store.ends_log(lines) else None
                after, last_sent = lines[-1][0], time.monotonic()
                yield Lines(lines)
            if len(lines) >= log_store.READ_LINES:
                woke = None
                continue  # more is stored right behind: send it before anything else
            if ended is None and current["status"] != Status.RUNNING.value \
                    and end_read_at is not None:
                ended = current  # the end line was read after it: the worker stored every line
            if ended is not None:
                yield Ended(ended)
                return
            if current["status"] != Status.RUNNING.value:
                ended = current  # one more read: the worker's last lines may trail its status
        if time.monotonic() - last_sent > keepalive_seconds:
            last_sent = time.monotonic()
            yield KeepAlive()
        woke = log_store.wait_for_lines(build_id, after,
                                        log_store.follow_wait(end_read_at, POLL_SECONDS))
