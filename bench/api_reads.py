"""``GET /builds/NAME`` under load, against reading the same records from the store directly.

The store holds 100,000 build records. As many client processes as the
machine has cores read random records for a fixed time: first straight
from MongoDB (the baseline: what the API cannot beat), then through the
API. Reported: the API's rate as a fraction of the direct rate, its 99th
percentile latency, and the resident memory of each API worker afterwards.

Both sides' clients are lean, so the two rates compare the servers rather
than the load generators that share the cores with them: the direct side
is pymongo (its BSON codec in C, one pooled connection), the API side one
kept-alive HTTP/1.1 connection per process that writes each request as
bytes and reads the answer's status line, headers and ``Content-Length``
body (``LeanHTTP``), then decodes the JSON. On two cores every microsecond
a client spends is taken from the API being measured: ``requests`` spent
several times its CPU per call, and ``http.client`` (headers parsed by the
``email`` package) 270 us per read against ``LeanHTTP``'s 120 us.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pymongo
from pymongo.errors import BulkWriteError

from bench.lab import Lab
from bench.processes import process_statuses, rss_mb
from bench.stats import Result, Samples, at_most, below, percentile, ratio_at_least

RECORDS = 100_000
DUPLICATE_KEY = 11000
NAME = "bench-read-{:06d}"
#: Records inserted at once, and the seconds one such step of the fill may take: the
#: embedded server stores a few hundred records a second on an idle machine, ten
#: times fewer on a machine running other builds and benchmarks beside this one.
FILL_BATCH = 1000
FILL_TIMEOUT = 300


def fill(lab: Lab, count: int = RECORDS) -> None:
    """``count`` completed build records shaped as the farm writes them."""
    from common.db import ensure_indexes, get_db

    ensure_indexes()
    builds = get_db().builds
    with pymongo.timeout(FILL_TIMEOUT):
        builds.delete_many({"name": {"$regex": "^bench-read-"}})
    fill_builds(builds, lab.registry, count)


def fill_builds(builds: Any, registry: str, count: int) -> None:
    """Insert ``count`` completed build records named ``NAME`` into ``builds``, as the
    farm writes them (images under ``registry``), a batch at a time."""
    from common.build_store import new_record

    now = dt.datetime.now(dt.UTC)
    batch: list[dict[str, Any]] = []
    for index in range(count):
        name = NAME.format(index)
        record = new_record(name, {
            "display_name": f"bench/read-{index}", "repository": f"https://example.org/r/{index}",
            "ref": None, "provider": "git", "status": "completed", "phase": "finished",
            "commit": f"{index:040x}", "image_name": f"{registry}/bench-{name}:{index:040x}",
            "config": "requirements.txt", "worker": "host-a", "end_time": now,
            "phases": {p: {"start": now, "end": now, "worker": "host-a"}
                       for p in ("fetching", "detecting", "building", "pushing", "registering")}})
        batch.append(dict(record))
        if len(batch) == FILL_BATCH:
            _insert(builds, batch)
            batch = []
    if batch:
        _insert(builds, batch)


def _insert(builds: Any, batch: list[dict[str, Any]]) -> None:
    """Insert ``batch``; records a retried insert had already stored are not an error.

    The farm bounds every store operation (``BINDER_MONGO_TIMEOUT_MS``, 1.5 s by
    default); a batch of thousands of records may take longer on the embedded
    server, so the fill has a bound of its own.
    """
    try:
        with pymongo.timeout(FILL_TIMEOUT):
            builds.insert_many(batch, ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != DUPLICATE_KEY for error in exc.details["writeErrors"]):
            raise


#: What one client process did: reads answered, every read's latency, and the
#: failed reads' answers.
Outcome = tuple[int, list[float], list[str]]


def _direct(args: tuple[str, str, float, int]) -> Outcome:
    mongo_url, database, seconds, seed = args
    builds: Any = pymongo.MongoClient(mongo_url)[database].builds

    def read(name: str) -> str | None:
        builds.find_one({"name": name})
        return None
    return _loop(read, seconds, seed)


class LeanHTTP:
    """One kept-alive HTTP/1.1 connection for GETs whose answers carry a
    ``Content-Length`` (every answer of the API does); anything else raises."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        address = urlsplit(url)
        host, port = address.hostname or "127.0.0.1", address.port or 80
        self.socket = socket.create_connection((host, port), timeout=timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.answers = self.socket.makefile("rb")
        self.host = f"{host}:{port}".encode()

    def get(self, path: str) -> tuple[int, bytes]:
        """The status and body of ``GET path``."""
        self.socket.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), self.host))
        status_line = self.answers.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ConnectionError(f"GET {path}: no HTTP answer ({status_line[:80]!r})")
        length = None
        while (line := self.answers.readline()) not in (b"\r\n", b"\n", b""):
            field, _, value = line.partition(b":")
            if field.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ConnectionError(f"GET {path}: the answer has no Content-Length")
        body = self.answers.read(length)
        if len(body) != length:
            raise ConnectionError(f"GET {path}: the connection closed mid-answer")
        return int(parts[1]), body

    def close(self) -> None:
        self.answers.close()
        self.socket.close()


def _api(args: tuple[str, str, float, int]) -> Outcome:
    url, _, seconds, seed = args
    # One kept-alive connection per client, as pymongo keeps one per direct client.
    connection = LeanHTTP(url)

    def read(name: str) -> str | None:
        status, body = connection.get(f"/builds/{name}")
        if status != 200:
            return f"GET /builds/{name} answered {status}: {body[:200]!r}"
        json.loads(body)
        return None
    try:
        return _loop(read, seconds, seed)
    finally:
        connection.close()


def _loop(read: Any, seconds: float, seed: int) -> Outcome:
    """``read`` random records for ``seconds``; it returns why a read failed, or ``None``.
    A failed read counts in the latencies, not in the rate, and the run goes on."""
    rng = random.Random(seed)
    latencies: list[float] = []
    failures: list[str] = []
    end = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        if started > end:
            return len(latencies) - len(failures), latencies, failures
        failure = read(NAME.format(rng.randrange(RECORDS)))
        latencies.append(time.perf_counter() - started)
        if failure is not None:
            failures.append(failure)


def _clients(target: Any, first: str, second: str, seconds: float,
             processes: int) -> tuple[float, list[float], list[str]]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        results = pool.map(target, [(first, second, seconds, seed) for seed in range(processes)])
    count = sum(n for n, _, _ in results)
    return (count / seconds, [latency for _, values, _ in results for latency in values],
            [failure for _, _, failures in results for failure in failures])


def api_worker_rss_mb(lab: Lab) -> list[float]:
    """Resident memory of each gunicorn worker of the lab's API."""
    master = next(p for p in lab.farm.processes if p.name == "api").popen.pid
    return [rss_mb(fields) for _, fields in process_statuses()
            if fields.get("PPid", "").strip() == str(master)]


#: Seconds each side reads, untimed, before the first round.
WARM_UP_SECONDS = 3.0


def api_reads(lab: Lab, rounds: int, say: Any, seconds: float = 10) -> list[Result]:
    say(f"storing {RECORDS:,} build records")
    started = time.monotonic()
    fill(lab)
    say(f"  stored in {time.monotonic() - started:.0f} s")
    processes = os.cpu_count() or 2
    direct_rate, api_rate, latency = Samples("req/s"), Samples("req/s"), Samples("s")
    p99s, failed = Samples("ms"), Samples("reads")

    def direct(length: float) -> float:
        return _clients(_direct, lab.env["MONGO_URL"], lab.env["BINDER_MONGO_DB"], length,
                        processes)[0]

    # Neither side is timed cold: the first reads of each API thread open its store
    # connection, and the store has just taken the fill.
    direct(WARM_UP_SECONDS)
    _clients(_api, lab.api.url, "", WARM_UP_SECONDS, processes)
    for round_ in range(rounds):
        api_first = round_ % 2 == 1  # neither side always runs after the other
        if not api_first:
            direct_rate.add(direct(seconds))
        rate, latencies, failures = _clients(_api, lab.api.url, "", seconds, processes)
        api_rate.add(rate)
        if api_first:
            direct_rate.add(direct(seconds))
        failed.add(len(failures))
        if failures:
            say(f"  {len(failures)} reads failed through the API, first: {failures[0]}")
        latency.values.extend(latencies)
        p99s.add(percentile(latencies, 0.99) * 1000)
        say(f"  round {round_ + 1}: direct {direct_rate.values[-1]:.0f}/s, "
            f"API {rate:.0f}/s, p99 {p99s.values[-1]:.1f} ms")
    rss = Samples("MB", api_worker_rss_mb(lab))
    return [
        Result("GET /builds/NAME, 100,000 records", "requests per second", api_rate,
               ratio_at_least(0.90), direct_rate,
               f"direct store reads from {processes} processes"),
        Result("GET /builds/NAME, 100,000 records", "p99 latency", p99s, at_most(50, "ms"),
               value=percentile(latency.values, 0.99) * 1000),
        Result("GET /builds/NAME, 100,000 records", "RSS of each API worker", rss,
               below(150, "MB"), value=max(rss.values) if rss.values else None),
        Result("GET /builds/NAME, 100,000 records", "failed reads through the API", failed,
               at_most(0, "reads"), value=max(failed.values)),
    ]
