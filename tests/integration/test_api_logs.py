"""Build logs over HTTP: as text, and followed live as Server-Sent Events."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from common import build_store
from common.config import get_config
from common.log_store import BuildLogWriter
from common.models import Status
from tests.support.api_cases import Event, read_sse, ticking_repo
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from workers.cli.server import api_workers
from workers.image_build import step_output


def follow(api: ApiClient, name: str, last_id: str | None = None,
           query: str = "follow=1") -> requests.Response:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    response = api.session.get(f"{api.url}/builds/{name}/logs?{query}", headers=headers,
                               stream=True, timeout=(5, 120))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


def lines_of(events: list[Event]) -> list[tuple[int, str]]:
    return [(int(e.id), e.data) for e in events if e.event == "message" and e.id is not None]


def test_follow_a_real_build_live_and_resume(api: ApiClient, git_server: GitServer,
                                             repo_url: str) -> None:
    url = ticking_repo(git_server, repo_url, ticks=8)
    started = api.start(url)
    assert started.status_code == 200, started.text
    name = started.json()["name"]

    first: list[Event] = []
    with follow(api, name) as response:
        for event in read_sse(response):
            first.append(event)
            if step_output(event.data) == "tick-3":
                break  # drop the connection mid-build
    assert step_output(first[-1].data) == "tick-3" and first[-1].id is not None
    second: list[Event] = []
    with follow(api, name, last_id=first[-1].id) as response:
        second = list(read_sse(response))
    assert second[-1].event == "end", second[-3:]
    record = api.build(name)
    assert second[-1].data == record["status"] == "completed", (record, api.logs(name))

    numbered = lines_of(first) + lines_of(second)
    # Resumed exactly after the last event seen: no line twice, none missing.
    assert [seq for seq, _ in numbered] == list(range(1, len(numbered) + 1))
    ticks = [step_output(text) for _, text in numbered
             if (step_output(text) or "").startswith("tick-")]
    assert ticks == [f"tick-{i}" for i in range(1, 9)]
    # The lines arrived while the build printed them, about a second apart.
    arrivals = [e.at for e in second if (step_output(e.data) or "").startswith("tick-")]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert gaps and max(gaps) < 2.0 and arrivals[-1] - arrivals[0] > 0.6 * len(gaps), gaps
    # The kept log is the followed one, line for line.
    assert api.logs(name).splitlines() == [text for _, text in numbered]


def test_follow_sends_a_new_line_within_a_second(api: ApiClient) -> None:
    name = f"logs-{uuid.uuid4().hex[:8]}"
    record = build_store.create_build(name, {"display_name": "logs/latency",
                                        "repository": "https://example.org/logs/latency"})
    writer = BuildLogWriter(record["build_id"])
    writer.write("before following")
    latencies = []
    with follow(api, name) as response:
        events = read_sse(response)
        assert next(events).data == "before following"
        for index in range(5):
            time.sleep(0.3)
            written = time.monotonic()
            writer.write(f"line {index}")
            event = next(events)
            assert event.data == f"line {index}", event
            latencies.append(event.at - written)
        writer.write("two\nparts")
        assert next(events).data == "two\nparts"
        writer.close()
        build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "test over")
        end = next(events)
        assert (end.event, end.data) == ("end", "failed")
    assert max(latencies) < 1.0, latencies
    # Plain text: every line, or those after a line number.
    assert api.logs(name).splitlines() == ["before following", "line 0", "line 1", "line 2",
                                           "line 3", "line 4", "two", "parts"]
    tail = api.request("GET", f"/builds/{name}/logs?after=5")
    assert tail.text.splitlines() == ["line 4", "two", "parts"]
    # Following an ended build replays it and ends at once; ?after resumes too.
    with follow(api, name, query="follow=true&after=6") as response:
        replay = list(read_sse(response))
    assert [(e.event, e.data) for e in replay] == [("message", "two\nparts"), ("end", "failed")]



def test_followers_past_the_api_threads_are_refused_and_reads_still_answer(
        api: ApiClient) -> None:
    # A follower holds an API thread while its build runs. More followers of a quiet
    # build than the API has threads must not make other requests wait for it to end:
    # each process keeps two threads, and a follower past that is told to retry.
    name = f"logs-{uuid.uuid4().hex[:8]}"
    record = build_store.create_build(name, {"display_name": "logs/quiet",
                                        "repository": "https://example.org/logs/quiet"})
    config = get_config()
    per_process = config.api_threads - 2
    sessions = [requests.Session() for _ in range(api_workers(config) * config.api_threads + 4)]

    def open_follower(session: requests.Session) -> requests.Response:
        return session.get(f"{api.url}/builds/{name}/logs?follow=1", stream=True,
                           timeout=(5, 20))
    try:
        with ThreadPoolExecutor(len(sessions)) as pool:
            followers = list(pool.map(open_follower, sessions))
        refused = [f for f in followers if f.status_code == 503]
        following = [f for f in followers if f.status_code == 200]
        assert len(following) + len(refused) == len(followers), \
            [f.status_code for f in followers]
        assert len(following) >= per_process and refused
        assert {f.json()["type"] for f in refused} == {"tooManyFollowers"}
        assert {f.headers["Retry-After"] for f in refused} == {"5"}
        started = time.monotonic()
        for _ in range(10):
            assert api.request("GET", f"/builds/{name}").status_code == 200
        assert time.monotonic() - started < 5
        # The build ends: its followers end and give their threads back.
        build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "test over")
        for follower in following:
            assert list(read_sse(follower))[-1].event == "end"
        other = build_store.create_build(f"{name}-2", {
            "display_name": "logs/quiet2", "repository": "https://example.org/logs/quiet2"})
        try:
            # As many as one process may follow: none can be refused once all are free.
            with ThreadPoolExecutor(per_process) as pool:
                again = list(pool.map(lambda session: session.get(
                    f"{api.url}/builds/{name}-2/logs?follow=1", stream=True, timeout=(5, 20)),
                    sessions[:per_process]))
            assert [f.status_code for f in again] == [200] * per_process
        finally:
            build_store.finish(other["build_id"], other["attempt"], Status.FAILED, "test over")
    finally:
        build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "test over")
        for session in sessions:
            session.close()


def test_followers_whose_clients_left_give_their_threads_back_at_once(api: ApiClient) -> None:
    # A closed tab or a dropped link frees its follower's thread within a poll, not at
    # the stream's next keep-alive (15 s): once every thread that may follow was taken
    # and their clients left, new followers are served again in seconds.
    name = f"logs-{uuid.uuid4().hex[:8]}"
    record = build_store.create_build(name, {"display_name": "logs/left",
                                        "repository": "https://example.org/logs/left"})
    config = get_config()
    per_process = config.api_threads - 2
    url = f"{api.url}/builds/{name}/logs?follow=1"
    try:
        sessions = [requests.Session() for _ in range(api_workers(config) * config.api_threads)]
        with ThreadPoolExecutor(len(sessions)) as pool:
            followers = list(pool.map(lambda s: s.get(url, stream=True, timeout=(5, 20)),
                                      sessions))
        assert any(f.status_code == 503 for f in followers)  # every follower thread taken
        for follower, session in zip(followers, sessions, strict=True):
            follower.close()
            session.close()
        left_at = time.monotonic()
        statuses: list[int] = []
        while time.monotonic() - left_at < 5:
            fresh = [requests.Session() for _ in range(per_process)]
            with ThreadPoolExecutor(per_process) as pool:
                again = list(pool.map(lambda s: s.get(url, stream=True, timeout=(5, 20)), fresh))
            statuses = [f.status_code for f in again]
            for follower, session in zip(again, fresh, strict=True):
                follower.close()
                session.close()
            if statuses == [200] * per_process:
                break
            time.sleep(0.5)
        assert statuses == [200] * per_process, statuses
    finally:
        build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "test over")
