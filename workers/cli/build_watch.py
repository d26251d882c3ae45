"""Following one build attempt: its record polled, its log streamed, until it ends.

``watch_build`` is the loop both views share (the live terminal view and
plain lines for pipes): it reads the log on a thread, polls the record for
phase changes, and hands each to the caller's ``BuildObserver``. It returns
the attempt's final record, also when a forced rebuild replaced it.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from typing import Any, Protocol

from common.models import FINAL_STATUSES, STEPS
from workers.cli.farm_client import ApiError, FarmClient, LogEvent

#: Seconds between polls of the record while the log is quiet.
POLL_SECONDS = 0.5
#: How long the log may trail the record's final status before we stop waiting.
LOG_GRACE_SECONDS = 5.0
#: How long the API may be unreachable while following before giving up.
OUTAGE_SECONDS = 30.0

FINAL = {status.value for status in FINAL_STATUSES}
#: The phases a build works through, in order (``queued`` and ``finished`` are states).
WORK_PHASES = [step.state.value for step in STEPS]


class BuildObserver(Protocol):
    def record(self, record: dict[str, Any]) -> None:
        """The attempt's record, each time it was read."""

    def line(self, text: str) -> None:
        """One new line of the attempt's log."""

    def log_unavailable(self, error: ApiError) -> None:
        """The log could not be followed (the status still is)."""


def is_final(record: dict[str, Any]) -> bool:
    return record.get("status") in FINAL


def parse_time(value: str | None) -> dt.datetime | None:
    """An API timestamp as an aware datetime (the API's naive times are UTC)."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def seconds_between(start: str | None, end: str | None, now: dt.datetime | None = None) -> \
        float | None:
    """Seconds from ``start`` to ``end`` (or to ``now`` while it runs); never negative."""
    begun = parse_time(start)
    if begun is None:
        return None
    ended = parse_time(end) or now or dt.datetime.now(dt.UTC)
    return max(0.0, (ended - begun).total_seconds())


def watch_build(client: FarmClient, record: dict[str, Any],
                observer: BuildObserver) -> dict[str, Any]:
    """Follow ``record``'s attempt until it ends and its log is read; return the final record."""
    name, build_id = record["name"], record.get("build-id")
    events: queue.Queue[LogEvent | ApiError | None] = queue.Queue()
    reader = threading.Thread(target=_read_log, args=(client, name, build_id, events),
                              name=f"log-{name}", daemon=True)
    reader.start()
    observer.record(record)
    log_done = False
    final_at: float | None = None
    last_answer = time.monotonic()
    next_poll = time.monotonic() + POLL_SECONDS
    while True:
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + POLL_SECONDS
            try:
                record = _current_attempt(client, name, build_id)
            except ApiError as exc:
                # A restarting API or a blip: keep following for a while.
                if exc.status is not None or time.monotonic() - last_answer > OUTAGE_SECONDS:
                    raise
                continue
            last_answer = time.monotonic()
            observer.record(record)
            if is_final(record) and final_at is None:
                final_at = time.monotonic()
        if final_at is not None and (log_done or time.monotonic() - final_at > LOG_GRACE_SECONDS):
            return record
        try:
            event = events.get(timeout=max(0.0, min(0.1, next_poll - time.monotonic())))
        except queue.Empty:
            continue
        if event is None:
            log_done = True
            next_poll = time.monotonic()  # the log ended: the status has changed
        elif isinstance(event, ApiError):
            observer.log_unavailable(event)
        elif event.kind == "line":
            observer.line(event.text)


def _read_log(client: FarmClient, name: str, build_id: str | None,
              events: queue.Queue[LogEvent | ApiError | None]) -> None:
    try:
        for event in client.follow_log(name, build_id):
            events.put(event)
    except ApiError as exc:
        events.put(exc)
    finally:
        events.put(None)


def _current_attempt(client: FarmClient, name: str, build_id: str | None) -> dict[str, Any]:
    """The record of the attempt being followed, even once a forced rebuild archived it."""
    record = client.build(name)
    if build_id is None or record.get("build-id") == build_id:
        return record
    for attempt in client.history(name):
        if attempt.get("build-id") == build_id:
            return attempt
    return record
