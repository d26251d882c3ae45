"""``common/log_store.py``: batches to both stores, whole logs, retried writes, failures,
and the lines a dead worker streamed but never stored."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest
from pymongo.errors import DuplicateKeyError

import common.log_store as log_store
from common.config import load_config
from common.errors import NoDatabase
from tests.support.log_stores import use_log_stores


class Logs:
    """A ``logs`` collection whose insert reports the duplicate of a retried write."""

    def __init__(self) -> None:
        self.inserted: list[dict[str, Any]] = []

    def find(self, *args: object, **kwargs: object) -> list[dict[str, Any]]:
        return []

    def insert_one(self, doc: dict[str, Any]) -> None:
        self.inserted.append(doc)
        raise DuplicateKeyError("E11000 duplicate key error: _id_")


def test_a_retried_batch_that_was_written_does_not_fail_the_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logs = Logs()
    use_log_stores(monkeypatch, logs)
    writer = log_store.BuildLogWriter("b1", load_config(environ={}))
    writer.write("one")
    writer.flush()  # no BadDatabase
    assert logs.inserted[0]["lines"] == ["one"]


class Collection:
    """A ``logs`` collection that keeps documents and can be told to fail."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.failing = False
        self.queries: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any], *args: object) -> list[dict[str, Any]]:
        self.queries.append(query)
        return [doc for doc in self.docs if doc["build_id"] == query["build_id"]
                and doc["last"] >= query["last"]["$gte"]]

    def insert_one(self, doc: dict[str, Any]) -> None:
        if self.failing:
            from pymongo.errors import AutoReconnect
            raise AutoReconnect("down")
        self.docs.append(doc)


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> tuple[Collection, fakeredis.FakeRedis]:
    logs = Collection()
    return logs, use_log_stores(monkeypatch, logs)


def kept_lines(logs: Collection) -> list[tuple[int, str]]:
    return [(doc["seq"] + offset, line) for doc in sorted(logs.docs, key=lambda d: d["seq"])
            for offset, line in enumerate(doc["lines"])]


def test_many_lines_are_kept_whole_in_bounded_documents(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    logs, stream = stores
    writer = log_store.BuildLogWriter("b2", load_config(environ={}))
    lines = [f"line {i} " + "x" * 400 for i in range(6000)]
    for line in lines:
        writer.write(line)
    writer.close()
    assert kept_lines(logs) == list(enumerate(lines, start=1))
    for doc in logs.docs:
        assert len(doc["lines"]) <= log_store.FLUSH_LINES
        assert sum(map(len, doc["lines"])) <= log_store.FLUSH_BYTES
        assert doc["last"] == doc["seq"] + len(doc["lines"]) - 1
        assert doc["_id"] == f"b2:{doc['seq']}"
    newest = stream.xrevrange(log_store.stream_key("b2"), count=1)
    assert newest[0][0] == "6000-0"
    assert log_store.entry_lines(newest[0][1])[-1] == (6000, lines[-1])


def test_lines_reach_the_live_stream_without_a_flush(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    _, stream = stores
    writer = log_store.BuildLogWriter("b3", load_config(environ={}))
    writer.write("hello")
    for _ in range(50):
        if stream.xlen(log_store.stream_key("b3")):
            break
        time.sleep(0.02)
    assert log_store.entry_lines(stream.xrange(log_store.stream_key("b3"))[0][1]) == [
        (1, "hello")]
    writer.close()


def test_a_store_failure_keeps_the_lines_and_is_raised(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    logs, _ = stores
    writer = log_store.BuildLogWriter("b4", load_config(environ={}))
    writer.write("first")
    logs.failing = True
    with pytest.raises(NoDatabase):
        writer.flush()
    logs.failing = False
    writer.write("second")
    writer.close()
    assert kept_lines(logs) == [(1, "first"), (2, "second")]


def test_writes_go_on_while_the_store_is_away_and_every_line_is_kept_after(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    logs, _ = stores
    writer = log_store.BuildLogWriter("b6", load_config(environ={}))
    logs.failing = True
    writer.write("first")
    time.sleep(log_store.FLUSH_SECONDS + 0.5)  # the drainer tried to store it and failed
    writer.write("second")  # no NoDatabase: a store that is away does not stop the build
    logs.failing = False
    writer.close()
    assert kept_lines(logs) == [(1, "first"), (2, "second")]


def test_a_full_queue_while_the_store_stays_away_ends_the_wait_after_the_service_wait(
        stores: tuple[Collection, fakeredis.FakeRedis], monkeypatch: pytest.MonkeyPatch) -> None:
    """A build printing much while MongoDB stays away is not held in ``write`` for good:
    after ``BINDER_SERVICE_WAIT`` the write raises, and the phase can give the build back."""
    logs, _ = stores
    monkeypatch.setattr(log_store, "MAX_BACKLOG_BYTES", 1000)
    writer = log_store.BuildLogWriter("b7", load_config(environ={"BINDER_SERVICE_WAIT": "1"}))
    logs.failing = True
    started = time.monotonic()
    with pytest.raises(NoDatabase, match="could not be stored"):
        for _ in range(100):
            writer.write("x" * 100)
    assert 0.9 <= time.monotonic() - started < 10
    logs.failing = False
    writer.close()
    assert len(kept_lines(logs)) > 10  # what was queued before is kept once it is back


def test_a_follower_waits_for_the_next_line_not_a_poll(
        stores: tuple[Collection, fakeredis.FakeRedis], monkeypatch: pytest.MonkeyPatch) -> None:
    _, stream = stores
    monkeypatch.setattr(log_store, "get_config", lambda: load_config(environ={}))
    entry_id, fields = log_store.stream_entry(1, ["one"])
    stream.xadd(log_store.stream_key("b5"), fields, id=entry_id)
    started = time.monotonic()
    assert log_store.wait_for_lines("b5", 0, timeout=5) is True  # a line after 0: no wait
    assert time.monotonic() - started < 1
    started = time.monotonic()
    # None after 1: waits out the timeout, and says so.
    assert log_store.wait_for_lines("b5", 1, timeout=0.3) is False
    assert 0.25 < time.monotonic() - started < 2


class StoredBatches:
    """A ``logs`` collection holding given batches, as ``read_lines`` queries it."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def find(self, query: dict[str, Any]) -> Any:
        after = query["last"]["$gt"]
        found = sorted((doc for doc in self.docs if doc["last"] > after),
                       key=lambda doc: doc["seq"])
        return type("Cursor", (), {"sort": lambda self, *args: found})()


def test_lines_a_dead_worker_streamed_but_never_stored_are_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Line 2 reached the stream, then its worker was killed before storing it; the
    # task's next delivery numbered on from the stream and stored line 3.
    logs = StoredBatches([{"seq": 1, "last": 1, "lines": ["one"]},
                          {"seq": 3, "last": 3, "lines": ["three"]}])
    stream = fakeredis.FakeRedis(decode_responses=True)
    key = log_store.stream_key("b9")
    for seq, line in enumerate(["one", "two, then killed", "three"], start=1):
        entry_id, fields = log_store.stream_entry(seq, [line])
        stream.xadd(key, fields, id=entry_id)
    use_log_stores(monkeypatch, logs, stream)
    monkeypatch.setattr(log_store, "get_config", lambda: load_config(environ={}))
    expected = [(1, "one"), (2, "two, then killed"), (3, "three")]
    assert log_store.read_lines("b9") == expected
    assert log_store.read_lines("b9", after=1) == expected[1:]
    assert log_store.read_lines("b9", after=2) == expected[2:]
    stream.delete(key)  # the stream expired: what was stored
    assert log_store.read_lines("b9") == [expected[0], expected[2]]


def test_a_reader_behind_the_trimmed_stream_gets_every_line_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logs = StoredBatches([{"seq": 1, "last": 3, "lines": ["one", "two", "three"]}])
    stream = fakeredis.FakeRedis(decode_responses=True)
    use_log_stores(monkeypatch, logs, stream)
    monkeypatch.setattr(log_store, "get_config", lambda: load_config(environ={}))
    # lines 4-6 already trimmed from the live stream, not yet stored
    entry_id, fields = log_store.stream_entry(7, [f"line {seq}" for seq in (7, 8, 9)])
    stream.xadd(log_store.stream_key("b6"), fields, id=entry_id)
    assert log_store.read_lines("b6") == [(1, "one"), (2, "two"), (3, "three")]
    logs.docs.append({"seq": 4, "last": 6, "lines": ["four", "five", "six"]})
    assert [seq for seq, _ in log_store.read_lines("b6", after=3)] == [4, 5, 6, 7, 8, 9]


def test_the_live_stream_keeps_the_newest_lines_in_few_entries(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    _, stream = stores
    writer = log_store.BuildLogWriter("b7", load_config(environ={"BINDER_LOG_STREAM_MAX": "3000"}))
    for i in range(1, 10001):
        writer.write(f"line {i}")
    writer.close()
    entries = stream.xrange(log_store.stream_key("b7"))
    # one entry per published batch, not per line; trimmed by line number
    assert len(entries) <= 10000 // log_store.PUBLISH_LINES
    streamed = [seq for _, fields in entries for seq, _ in log_store.entry_lines(fields)]
    assert streamed == list(range(streamed[0], 10001))
    assert 3000 <= len(streamed) <= 3000 + 2 * log_store.PUBLISH_LINES


def test_a_reader_starting_inside_a_stream_entry_gets_the_lines_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logs = StoredBatches([])
    stream = fakeredis.FakeRedis(decode_responses=True)
    use_log_stores(monkeypatch, logs, stream)
    monkeypatch.setattr(log_store, "get_config", lambda: load_config(environ={}))
    key = log_store.stream_key("b8")
    for first, lines in ((1, ["one", "two", "three"]), (4, ["four", "five\nstill five"])):
        entry_id, fields = log_store.stream_entry(first, lines)
        stream.xadd(key, fields, id=entry_id)
    assert log_store.read_lines("b8", after=2) == [(3, "three"), (4, "four"),
                                                   (5, "five\nstill five")]
    assert log_store.read_lines("b8", after=5) == []


def test_a_reopened_log_numbers_on_reading_only_the_end_of_the_stored_log(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    logs, stream = stores
    # lines 1-7 streamed and stored; 8-9 stored while Redis was away
    logs.docs += [log_store.log_document("b10", 1, ["l"] * 7),
                  log_store.log_document("b10", 8, ["l"] * 2)]
    entry_id, fields = log_store.stream_entry(1, ["l"] * 7)
    stream.xadd(log_store.stream_key("b10"), fields, id=entry_id)
    writer = log_store.BuildLogWriter("b10", load_config(environ={}))
    writer.write("next")
    writer.close()
    assert logs.docs[-1]["seq"] == 10
    # the store was asked for the documents from the stream's last line on only
    assert logs.queries[0] == {"build_id": "b10", "last": {"$gte": 7}}


def test_a_limited_read_takes_whole_batches_up_to_the_limit_then_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches 1-3 and 7-9 are stored; 4-6 only reached the stream (a worker died).
    logs = StoredBatches([{"seq": 1, "last": 3, "lines": ["1", "2", "3"]},
                          {"seq": 7, "last": 9, "lines": ["7", "8", "9"]},
                          {"seq": 10, "last": 12, "lines": ["10", "11", "12"]}])
    stream = fakeredis.FakeRedis(decode_responses=True)
    entry_id, fields = log_store.stream_entry(4, ["4", "5", "6"])
    stream.xadd(log_store.stream_key("b10"), fields, id=entry_id)
    use_log_stores(monkeypatch, logs, stream)
    monkeypatch.setattr(log_store, "get_config", lambda: load_config(environ={}))
    parts, after = [], 0
    while part := log_store.read_lines("b10", after, limit=4):
        parts.append([seq for seq, _ in part])
        after = part[-1][0]
    assert parts == [[1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12]]
    assert log_store.read_lines("b10", 0) == [(n, str(n)) for n in range(1, 13)]


def test_a_writer_told_where_the_log_ends_numbers_on_without_asking_the_stores(
        stores: tuple[Collection, fakeredis.FakeRedis]) -> None:
    logs, stream = stores
    logs.docs.append(log_store.log_document("b11", 1, ["kept"] * 9))  # not asked
    writer = log_store.BuildLogWriter("b11", load_config(environ={}), last_line=4)
    assert writer.last_line == 4
    writer.write("five")
    assert writer.last_line == 5
    writer.close()
    assert logs.queries == []
    assert logs.docs[-1]["seq"] == 5 and logs.docs[-1]["lines"] == ["five"]
