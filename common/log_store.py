"""Build logs: kept in MongoDB, followable live through a Redis stream.

Lines are numbered from 1 per build. Writing a line only queues it: a
drainer thread hands queued lines to the build's bounded Redis stream, one
entry per batch (its id the batch's last line number), at most a tenth of a
second after they were written (live followers), and keeps them in the
``logs`` collection in documents of up to a few thousand lines, at least
every half second. So a build printing
megabytes a second is read as fast as it prints (BuildKit stalls a build
whose output is not read), and a store that slows down delays only the
drainer, until the queue holds ``MAX_BACKLOG_BYTES``: then writers wait,
which bounds memory. A reader takes MongoDB first, then any newer lines
from the stream, so a running build's log is complete whichever store is
ahead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from pymongo.errors import DuplicateKeyError
from redis.typing import EncodableT, FieldT

from common.config import Config, get_config
from common.db import get_db, translate_errors
from common.errors import NoDatabase
from common.models import FINAL_STATUSES
from common.redis_client import redis_client

log = logging.getLogger(__name__)

PUBLISH_SECONDS = 0.1
PUBLISH_LINES = 1000
FLUSH_SECONDS = 0.5
FLUSH_LINES = 5000
FLUSH_BYTES = 1024 * 1024
MAX_BACKLOG_BYTES = 32 * 1024 * 1024
#: Longer lines are cut (a document holds at most 16 MiB).
MAX_LINE_CHARS = 64 * 1024
REDIS_RETRY_SECONDS = 5.0
MONGO_RETRY_SECONDS = 1.0
#: Lines a reader of a log takes at once (``read_lines``'s ``limit``).
READ_LINES = 10_000


#: The line each phase's log starts with; readers of a log learn the phase from it.
_BANNER = re.compile(r"^== (?P<phase>[a-z]+) on \S+ \(attempt \d+\)$")


def phase_banner(phase: str, worker: str, attempt: int) -> str:
    """The first line of a phase's part of the log."""
    return f"== {phase} on {worker} (attempt {attempt})"


#: The last line of an attempt's log: the worker stores it, then ends the build.
_END_LINE = re.compile(rf"^== build ({'|'.join(status.value for status in FINAL_STATUSES)})(: |$)")
#: A follower that has read the end line reads the status again this soon, for at
#: most END_WATCH_SECONDS (the worker ends the build right after storing that line),
#: instead of waiting a whole poll for lines that will not come.
END_PAUSE = 0.02
END_WATCH_SECONDS = 1.0


def end_line(status: str, error: str | None, suggestions: list[str] | None = None) -> str:
    """The line a worker ends an attempt's log with, before it ends the build:
    ``== build STATUS[: ERROR[ Suggestions: A B]]`` (each suggestion is a sentence).

    The suggestions share the end line rather than follow it, so the end line
    stays the last line of the attempt (``ends_log``).
    """
    line = f"== build {status}"
    if error:
        line += f": {error}"
    if error and suggestions:
        line += " Suggestions: " + " ".join(suggestions)
    return line


def restart_line(reason: str, attempt: int) -> str:
    """The line the farm adds when it starts a build again from fetch, its worker
    lost (``reason``, as the record's ``lost`` keeps it): ``attempt`` is the new one."""
    return f"== restarted by the farm: {reason}; attempt {attempt} starts from fetch"


def sent_again_line(step: str, reason: str) -> str:
    """The line the farm adds when it sends a build's next step, ``step``, itself: the
    worker that ended the step before did not (``reason``)."""
    return f"== {step} sent by the farm: {reason}"


def ends_log(lines: list[tuple[int, str]]) -> bool:
    """True when the last of ``lines`` is an attempt's end line: once the build's status
    has ended too, a reader has every line."""
    return bool(lines) and _END_LINE.match(lines[-1][1]) is not None


def follow_wait(end_read_at: float | None, poll: float) -> float:
    """How long a follower waits for a new line before reading the build again:
    ``poll``, or END_PAUSE for a moment after it read the end line (``ends_log``)
    at ``end_read_at`` (``time.monotonic()``)."""
    if end_read_at is not None and time.monotonic() - end_read_at < END_WATCH_SECONDS:
        return END_PAUSE
    return poll


def banner_phase(line: str) -> str | None:
    """The phase a ``phase_banner`` line starts, else ``None``."""
    match = _BANNER.match(line)
    return match.group("phase") if match else None


def stream_key(build_id: str) -> str:
    return f"binder:log:{build_id}"


def stream_entry(first: int, lines: list[str]) -> tuple[str, dict[FieldT, EncodableT]]:
    """The live stream's entry for ``lines`` numbered from ``first``: its id is the last
    line's number (so "entries after N" are those holding a line after N)."""
    return f"{first + len(lines) - 1}-0", {"n": first, "lines": json.dumps(lines)}


def entry_lines(fields: dict[str, Any]) -> list[tuple[int, str]]:
    """The numbered lines of one live stream entry."""
    first = int(fields["n"])
    return list(enumerate(json.loads(fields["lines"]), start=first))


def log_document(build_id: str, start: int, lines: list[str]) -> dict[str, Any]:
    """The stored batch of ``lines`` numbered from ``start``.

    The _id is fixed by the first line, so a retried insert cannot store a batch twice.
    """
    return {"_id": f"{build_id}:{start}", "build_id": build_id, "seq": start,
            "last": start + len(lines) - 1, "lines": lines}


def store_lines(build_id: str, lines: list[str]) -> None:
    """Keep the whole, short log of a build no worker runs (a cache hit the API answers)."""
    with translate_errors():
        try:
            get_db().logs.insert_one(log_document(build_id, 1, [line[:MAX_LINE_CHARS]
                                                                for line in lines]))
        except DuplicateKeyError:
            log.info("log of %s was already written", build_id)


def append_line(build_id: str, line: str, config: Config | None = None) -> None:
    """Add ``line`` at the end of a build's log, from a process that runs no phase of
    it (the farm restarting or ending a build its worker lost); raises ``NoDatabase``.

    Numbered after the last line, as the next phase's writer numbers its own.
    """
    writer = BuildLogWriter(build_id, config)
    try:
        writer.write(line)
    finally:
        writer.close()


class BuildLogWriter:
    """Appends numbered lines to one build's log; thread-safe.

    ``flush`` publishes and keeps every line written so far (call it before
    the build's status changes, so a follower that sees the end has every
    line); ``close`` flushes and stops the drainer. A store failure is
    raised by the next ``write`` or ``flush``; its lines stay queued.
    """

    def __init__(self, build_id: str, config: Config | None = None,
                 last_line: int | None = None) -> None:
        """Number lines after ``last_line`` when the caller knows the log ends there
        (``build_store.carried_log_end``), else after the last one the stores hold."""
        self.build_id = build_id
        self.config = config or get_config()
        self._cond = threading.Condition()  # guards the queues below
        self._io = threading.Lock()  # one drain at a time, so lines stay in order
        self._unpublished: list[tuple[int, str]] = []
        self._unstored: list[str] = []
        self._unstored_bytes = 0
        self._backlog = 0  # bytes written and not yet stored
        self._next = (self._last_seq() if last_line is None else last_line) + 1
        self._unstored_start = self._next
        self._last_store = time.monotonic()
        self._redis = redis_client(self.config)
        self._redis_down_until = 0.0
        self._error: BaseException | None = None
        self._stopping = False
        self._drainer = threading.Thread(target=self._run, daemon=True,
                                         name=f"log-{build_id[:8]}")
        self._drainer.start()

    def _last_seq(self) -> int:
        """The last line number used, in the live stream or in MongoDB (a worker
        that died may have streamed lines it never flushed; lines written while
        Redis was away are only in MongoDB).

        The stream's newest line bounds the MongoDB query: the next phase of a
        build that printed a gigabyte reads the few documents at its end, not
        every document of its log (a sort the store cannot take from an index).
        """
        try:
            newest = redis_client(self.config).xrevrange(stream_key(self.build_id), count=1)
        except redis.RedisError:
            newest = []
        # entry ids are "<last line number>-0"
        streamed = int(str(newest[0][0]).split("-")[0]) if newest else 0
        with translate_errors():
            docs = get_db().logs.find({"build_id": self.build_id, "last": {"$gte": streamed}},
                                      {"last": 1})
            stored = max((doc["last"] for doc in docs), default=0)
        return max(stored, streamed)

    @property
    def last_line(self) -> int:
        """The number of the last line written (0: none yet, in an empty log)."""
        with self._cond:
            return self._next - 1

    def write(self, line: str) -> None:
        """Queue one line; waits only while the queue is full, and then for at most
        ``BINDER_SERVICE_WAIT``: raises ``NoDatabase`` when it is still full (the
        phase then gives its build back rather than sit here for good)."""
        self._raise_failure()
        line = line.rstrip("\n")[:MAX_LINE_CHARS]
        with self._cond:
            deadline = time.monotonic() + self.config.service_wait
            while self._backlog > MAX_BACKLOG_BYTES and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoDatabase(
                        f"the build's log could not be stored for {self.config.service_wait} s "
                        f"and {MAX_BACKLOG_BYTES // (1024 * 1024)} MiB of it waits")
                self._cond.wait(min(1.0, left))
            seq = self._next
            self._next += 1
            self._unpublished.append((seq, line))
            self._unstored.append(line)
            self._unstored_bytes += len(line)
            self._backlog += len(line)
            if len(self._unpublished) >= PUBLISH_LINES:
                self._cond.notify_all()

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(PUBLISH_SECONDS)
            try:
                self._drain(force=False)
            except NoDatabase:
                # MongoDB is away (restarted, frozen): the lines stay queued (the
                # live stream has them) and are stored once it is back; the
                # build goes on writing meanwhile.
                time.sleep(MONGO_RETRY_SECONDS)
            except Exception as exc:  # handed to the next write or flush
                self._error = exc
                time.sleep(1)

    def _drain(self, force: bool) -> None:
        """Publish what is queued, and store it when a batch is due (or ``force``)."""
        with self._io:
            now = time.monotonic()
            docs: list[dict[str, Any]] = []
            with self._cond:
                publish, self._unpublished = self._unpublished, []
                if self._unstored and (force or now - self._last_store >= FLUSH_SECONDS
                                       or len(self._unstored) >= FLUSH_LINES
                                       or self._unstored_bytes >= FLUSH_BYTES):
                    docs = self._documents(self._unstored_start, self._unstored)
                    self._unstored, self._unstored_bytes = [], 0
                    self._unstored_start = self._next
                    self._last_store = now
            if publish:
                self._publish(publish)
            for index, doc in enumerate(docs):
                try:
                    self._store(doc)
                except BaseException:
                    self._requeue(docs[index:])
                    raise
                with self._cond:
                    self._backlog -= sum(len(line) for line in doc["lines"])
                    self._cond.notify_all()

    def _documents(self, start: int, lines: list[str]) -> list[dict[str, Any]]:
        """``lines`` from line ``start`` on, in documents of bounded length and size."""
        docs: list[dict[str, Any]] = []
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and (len(chunk) >= FLUSH_LINES or size + len(line) > FLUSH_BYTES):
                docs.append(self._document(start, chunk))
                start, chunk, size = start + len(chunk), [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            docs.append(self._document(start, chunk))
        return docs

    def _document(self, start: int, lines: list[str]) -> dict[str, Any]:
        return log_document(self.build_id, start, lines)

    def _requeue(self, docs: list[dict[str, Any]]) -> None:
        with self._cond:
            lines = [line for doc in docs for line in doc["lines"]]
            self._unstored = lines + self._unstored
            self._unstored_bytes += sum(len(line) for line in lines)
            self._unstored_start = docs[0]["seq"]

    def _publish(self, lines: list[tuple[int, str]]) -> None:
        """Best effort: MongoDB keeps every line; after a Redis failure the live
        stream pauses for a few seconds instead of slowing every line down."""
        if time.monotonic() < self._redis_down_until:
            return
        # The stream keeps only its newest lines: older ones need not be sent.
        lines = lines[-self.config.log_stream_max:]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for start in range(0, len(lines), PUBLISH_LINES):
                batch = lines[start:start + PUBLISH_LINES]
                entry_id, fields = stream_entry(batch[0][0], [line for _, line in batch])
                # Entry ids are line numbers: trimming below one keeps the newest lines.
                pipe.xadd(stream_key(self.build_id), fields, id=entry_id,
                          minid=max(0, batch[-1][0] - self.config.log_stream_max),
                          approximate=True)
            pipe.execute()
        except redis.RedisError:
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS

    def _store(self, doc: dict[str, Any]) -> None:
        with translate_errors():
            try:
                get_db().logs.insert_one(doc)
            except DuplicateKeyError:
                # pymongo retried the insert after a slow answer and the first try was
                # written: the batch is stored (same _id), nothing is lost or doubled.
                log.info("log batch of %s was already written", self.build_id)

    def flush(self) -> None:
        """Publish and keep every line written so far, now."""
        self._raise_failure()
        self._drain(force=True)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._drainer is not threading.current_thread():
            self._drainer.join(timeout=10)
        self.flush()
        with contextlib.suppress(redis.RedisError):
            self._redis.expire(stream_key(self.build_id), 3600)


def read_lines(build_id: str, after: int = 0,
               limit: int | None = None) -> list[tuple[int, str]]:
    """Numbered lines of a build's log after line ``after``.

    MongoDB holds the flushed batches; the live stream gives the rest: lines
    newer than the last batch, and lines a worker streamed but died before
    flushing (a gap between batches, as the next writer numbers on from the
    stream). With ``limit``, about that many lines (whole batches): the next
    ones come from calling again after the last line returned, so a reader of
    a log of millions of lines holds one part of it at a time.
    """
    stored: list[tuple[int, str]] = []
    with translate_errors():
        docs = get_db().logs.find({"build_id": build_id, "last": {"$gt": after}}).sort("seq", 1)
        for doc in docs:
            for offset, text in enumerate(doc["lines"]):
                seq = doc["seq"] + offset
                if seq > after:
                    stored.append((seq, text))
            if limit is not None and len(stored) >= limit:
                break
    # Cut short: what the stream has past the last stored line comes in the next part.
    upto = stored[-1][0] if limit is not None and len(stored) >= limit else None
    lines = dict(stored)
    for seq, text in _stream_lines(build_id, _first_missing(stored, after) - 1):
        if upto is not None and seq > upto:
            break
        lines.setdefault(seq, text)
    return sorted(lines.items())


def _first_missing(lines: list[tuple[int, str]], after: int) -> int:
    """The first line number after ``after`` that ``lines`` (in order) lacks."""
    expected = after + 1
    for seq, _text in lines:
        if seq != expected:
            break
        expected += 1
    return expected


def wait_for_lines(build_id: str, after: int, timeout: float) -> bool | None:
    """Return as soon as the live stream has a line after ``after``, at most ``timeout``
    seconds later: a follower is woken by the line itself, not by a poll.

    True when the stream has such a line, False when it had none all along, None
    when there was no stream to ask (Redis away: only MongoDB can tell).
    """
    try:
        found = redis_client(get_config()).xread({stream_key(build_id): f"{after}-0"},
                                                 count=1, block=max(1, int(timeout * 1000)))
    except redis.RedisError:
        time.sleep(timeout)  # no live stream: the caller reads MongoDB again in a while
        return None
    return bool(found)


def _stream_lines(build_id: str, after: int) -> Iterator[tuple[int, str]]:
    try:
        entries: list[tuple[str, dict[str, Any]]] = list(
            redis_client(get_config()).xrange(stream_key(build_id), min=f"{after + 1}-0")
            or [])  # type: ignore[arg-type]
    except redis.RedisError:
        return
    for _entry_id, fields in entries:
        for seq, text in entry_lines(fields):
            if seq <= after:
                continue
            if seq != after + 1:
                # The stream keeps only its newest lines (and misses those written
                # while Redis was down): stop at a gap; MongoDB fills it shortly.
                return
            after = seq
            yield seq, text
