"""Build logs: kept in MongoDB, followable live through a Redis stream.

Lines are numbered from 1 per build. The writer appends each line to the
build's bounded Redis stream at once (live followers) and flushes batches
to the ``logs`` collection (keeps) at least every half second and when it
closes. A reader takes MongoDB first, then any newer lines from the stream,
so a running build's log is complete whichever store is ahead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from pymongo.errors import DuplicateKeyError

from common.config import Config, get_config
from common.db import get_db, translate_errors
from common.redis_client import redis_client

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_LINES = 200
REDIS_RETRY_SECONDS = 5.0


def stream_key(build_id: str) -> str:
    return f"binder:log:{build_id}"


class BuildLogWriter:
    """Appends numbered lines to one build's log; thread-safe."""

    def __init__(self, build_id: str, config: Config | None = None) -> None:
        self.build_id = build_id
        self.config = config or get_config()
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._next = self._last_seq() + 1
        self._pending_start = self._next
        self._last_flush = time.monotonic()
        self._redis = redis_client(self.config)
        self._redis_down_until = 0.0

    def _last_seq(self) -> int:
        """The last line number used, in MongoDB or in the live stream (a worker
        that died may have streamed lines it never flushed)."""
        with translate_errors():
            doc = get_db().logs.find_one({"build_id": self.build_id},
                                         sort=[("seq", -1)])
        stored = 0 if doc is None else doc["seq"] + len(doc["lines"]) - 1
        try:
            newest = redis_client(self.config).xrevrange(stream_key(self.build_id), count=1)
        except redis.RedisError:
            newest = []
        streamed = int(newest[0][1]["n"]) if newest else 0  # type: ignore[index]
        return max(stored, streamed)

    def write(self, line: str) -> None:
        line = line.rstrip("\n")
        with self._lock:
            seq = self._next
            self._next += 1
            self._pending.append(line)
            self._publish(seq, line)
            due = (time.monotonic() - self._last_flush > FLUSH_SECONDS
                   or len(self._pending) >= FLUSH_LINES)
        if due:
            self.flush()

    def _publish(self, seq: int, line: str) -> None:
        """Best effort: MongoDB keeps every line; after a Redis failure the live
        stream pauses for a few seconds instead of slowing every line down."""
        if time.monotonic() < self._redis_down_until:
            return
        try:
            # Entry ids are the line numbers, so readers ask for "after N".
            self._redis.xadd(stream_key(self.build_id), {"n": seq, "line": line},
                             id=f"{seq}-0", maxlen=self.config.log_stream_max,
                             approximate=True)
        except redis.RedisError:
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            doc = {"build_id": self.build_id, "seq": self._pending_start,
                   "last": self._next - 1, "lines": self._pending}
            self._pending = []
            self._pending_start = self._next
            self._last_flush = time.monotonic()
        with translate_errors():
            try:
                get_db().logs.insert_one(doc)
            except DuplicateKeyError:
                # pymongo retried the insert after a slow answer and the first try was
                # written: the batch is stored (same _id), nothing is lost or doubled.
                log.info("log batch of %s was already written", self.build_id)

    def close(self) -> None:
        self.flush()
        with contextlib.suppress(redis.RedisError):
            self._redis.expire(stream_key(self.build_id), 3600)


def read_lines(build_id: str, after: int = 0) -> list[tuple[int, str]]:
    """Numbered lines of a build's log after line ``after``."""
    lines: list[tuple[int, str]] = []
    with translate_errors():
        docs = get_db().logs.find({"build_id": build_id, "last": {"$gt": after}}).sort("seq", 1)
        for doc in docs:
            for offset, text in enumerate(doc["lines"]):
                seq = doc["seq"] + offset
                if seq > after:
                    lines.append((seq, text))
    last = lines[-1][0] if lines else after
    lines.extend(_stream_lines(build_id, last))
    return lines


def _stream_lines(build_id: str, after: int) -> Iterator[tuple[int, str]]:
    try:
        entries: list[tuple[str, dict[str, Any]]] = list(
            redis_client(get_config()).xrange(stream_key(build_id), min=f"{after + 1}-0")
            or [])  # type: ignore[arg-type]
    except redis.RedisError:
        return
    for _entry_id, fields in entries:
        seq = int(fields["n"])
        if seq > after:
            after = seq
            yield seq, fields["line"]
