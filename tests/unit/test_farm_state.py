"""The farm's page: worker process records grouped by host."""

from __future__ import annotations

import datetime as dt

from api.farm_state import hosts_view
from common.worker_store import WorkerRecord

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def worker(host: str, pid: int, seen: float = 1, state: str = "up",
           builds: tuple[str, ...] = ()) -> WorkerRecord:
    return WorkerRecord(worker=f"{host}@box:{pid}", node=f"{host}@box", host=host,
                        hostname="box", pid=pid, state=state,
                        started=NOW - dt.timedelta(hours=1),
                        last_seen=NOW - dt.timedelta(seconds=seen), builds=list(builds))


def test_processes_grouped_by_host_with_the_names_of_their_builds() -> None:
    hosts = hosts_view([worker("b", 7), worker("a", 12, builds=("id2", "id1", "ended")),
                        worker("a", 11, seen=3)],
                       {"id1": "one", "id2": "two"}, stale=10, now=NOW)
    assert [host["host"] for host in hosts] == ["a", "b"]
    a = hosts[0]
    assert a["state"] == "up"
    assert a["last_seen"] == NOW - dt.timedelta(seconds=1)
    assert [(p["name"], p["state"], p["builds"]) for p in a["workers"]] == [
        ("a@box:11", "up", []), ("a@box:12", "up", ["one", "two"])]


def test_a_silent_process_is_lost_and_a_host_with_none_up_says_so() -> None:
    hosts = hosts_view([worker("a", 1, seen=30), worker("a", 2, seen=40, state="stopped"),
                        worker("b", 3, seen=5, state="draining"), worker("b", 4, seen=2)],
                       {}, stale=10, now=NOW)
    a, b = hosts
    assert a["state"] == "lost"
    assert [p["name"] for p in a["workers"]] == ["a@box:1"]  # the stopped one is gone
    assert b["state"] == "up"
    assert {p["state"] for p in b["workers"]} == {"draining", "up"}


def test_a_host_whose_processes_all_stopped_is_stopped() -> None:
    hosts = hosts_view([worker("a", 1, state="stopped", seen=50),
                        worker("a", 2, state="stopped", seen=20)], {}, stale=10, now=NOW)
    assert [(h["state"], len(h["workers"]), h["last_seen"]) for h in hosts] == [
        ("stopped", 2, NOW - dt.timedelta(seconds=20))]
