"""A build printing 1 GiB of log lines: the worker's memory, and a follower that keeps up.

The build's one step prints numbered lines at a steady rate just under what
the engine lets a step print (see ``workers.docker_engine``). While it runs,
a follower reads the log as Server-Sent Events and the worker's resident
memory (its process and children) is sampled. Reported: the memory growth
over the worker before the build, whether the follower got every line, and
how far behind the end of the build it got the last one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import time
from typing import Any

import requests

from bench.builds import await_build, start_build
from bench.lab import Lab
from bench.processes import process_statuses, rss_mb
from bench.stats import Result, Samples, at_most, below
from workers.docker_engine import ENGINE_ENVIRONMENT

LINE_BYTES = 100  # with its newline
PRINTER = """\
import sys, time
total, rate = int(sys.argv[1]), float(sys.argv[2])
count, per_tick = total // 100, max(1, int(rate / 100 / 20))
pad = "x" * 88
started = time.monotonic()
for first in range(0, count, per_tick):
    last = min(count, first + per_tick)
    sys.stdout.write("".join(f"L{i:010d} {pad}\\n" for i in range(first, last)))
    sys.stdout.flush()
    ahead = (first + per_tick) * 100 / rate - (time.monotonic() - started)
    if ahead > 0:
        time.sleep(ahead)
"""
_LINE = re.compile(r" L(\d{10}) x{88}$")


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for this, fields in process_statuses():
        children.setdefault(int(fields["PPid"]), []).append(this)
        rss[this] = rss_mb(fields)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


class Follower(threading.Thread):
    """Follows a build's log over the API as a browser's EventSource does, noting each
    numbered line it gets: after an error event or a dropped connection it reconnects
    with ``Last-Event-ID`` (and counts the reconnection)."""

    def __init__(self, lab: Lab, name: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{lab.api.url}/builds/{name}/logs?follow=1"
        self.headers = {"Authorization": lab.api.key}
        self.highest = -1
        self.count = 0
        self.in_order = True
        self.ended_at: float | None = None
        self.reconnections = 0
        self.last_event_id: str | None = None

    def run(self) -> None:
        while self.ended_at is None:
            headers = dict(self.headers)
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = self.last_event_id
            with contextlib.suppress(requests.RequestException):
                self._read(headers)
            if self.ended_at is None:
                self.reconnections += 1
                time.sleep(1)  # the stream's "retry: 1000"

    def _read(self, headers: dict[str, str]) -> None:
        with requests.get(self.url, headers=headers, stream=True, timeout=(10, 600)) as r:
            for raw in r.iter_lines(chunk_size=65536, decode_unicode=True):
                if raw.startswith("event: end"):
                    self.ended_at = time.time()  # wall clock, as the record's end
                    return
                if raw.startswith("event: error"):
                    return
                if raw.startswith("id: "):
                    self.last_event_id = raw[4:]
                elif raw.startswith("data: "):
                    match = _LINE.search(raw)
                    if match:
                        number = int(match.group(1))
                        self.in_order &= number == self.highest + 1
                        self.highest = max(self.highest, number)
                        self.count += 1


def big_log(lab: Lab, say: Any, total: int = 1024**3) -> list[Result]:
    rate = 0.9 * int(ENGINE_ENVIRONMENT["BUILDKIT_STEP_LOG_MAX_SPEED"])
    lines = total // LINE_BYTES
    say(f"a build printing {total / 1024**2:.0f} MiB of log lines "
        f"(about {total / rate / 60:.0f} min)")
    repo = f"biglog/print-{int(time.time())}"
    lab.git.make_repo(f"gh/{repo}", {"printer.py": PRINTER, "Dockerfile": (
        f"FROM {lab.base_image}\nCOPY printer.py /tmp/\n"
        f"RUN python3 /tmp/printer.py {total} {rate:.0f}\n")})
    worker = lab.workers["host-a"].popen.pid
    before = process_tree_rss_mb(worker)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(1):
            peak = max(peak, process_tree_rss_mb(worker))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    deadline = start + 3 * total / rate + 600
    started = start_build(lab, lab.repo_url(repo), deadline)
    follower = Follower(lab, started["name"])
    follower.start()
    try:
        # A slow poll, not a second follower of the gigabyte: the lag is measured
        # from the record's end, not the poll.
        record = await_build(lab, started, deadline, poll=1.0, follow=False)
    finally:
        done.set()
    seconds = time.perf_counter() - start
    follower.join(120)
    ended_utc = dt.datetime.fromisoformat(record["end-time"])
    ended = (ended_utc if ended_utc.tzinfo else ended_utc.replace(tzinfo=dt.UTC)).timestamp()
    lag = (follower.ended_at or time.time()) - ended
    say(f"  built in {seconds:.0f} s; worker {before:.0f} -> peak {peak:.0f} MiB; follower got "
        f"{follower.count:,} of {lines:,} lines, {lag:.1f} s after the end, "
        f"{follower.reconnections} reconnections")
    missing = Samples("lines", [float(lines - follower.count
                                      if follower.in_order else lines)])
    size = "1 GiB" if total == 1024**3 else f"{total / 1024**2:g} MiB"
    scenario = f"a build printing {size} of log lines"
    return [
        Result(scenario, "worker RSS growth", Samples("MiB", [peak - before]),
               below(100, "MiB")),
        Result(scenario, f"lines the follower missed ({follower.reconnections} reconnections)",
               missing, at_most(0, "lines")),
        Result(scenario, "follower behind the end", Samples("s", [max(lag, 0)]),
               at_most(5, "s")),
    ]
