"""What one start request (``POST /builds/``) of a new repository costs the farm, counted
in-process against the real services: MongoDB commands, Redis commands, git processes
and the requests the Git server served (``pytest -s`` prints them). The first start of
a process pays for its connections and indexes; the counts are those of the next one."""

from __future__ import annotations

import collections
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo.monitoring
import pytest
import redis.connection
from flask.testing import FlaskClient

from api import create_app
from common import db
from common.config import Config, get_config, set_config
from tests.integration.conftest import API_KEY, RUN_ID, unique
from tests.support.git_server import GitServer
from tests.support.store_commands import HOUSEKEEPING, StartedCommands, fresh_client

#: What a start sent while counting: ``("mongo", "find builds")``, ``("redis", "LPUSH")``,
#: ``("git", "ls-remote")``.
SENT: collections.Counter[tuple[str, str]] = collections.Counter()
COUNTING = [False]
#: What redis-py sends to set up a connection (once per connection, not per command).
CONNECTION_SETUP = {"AUTH", "HELLO", "CLIENT", "SELECT"}


class Commands(StartedCommands):
    """The store's commands while counting (registered once: pymongo cannot take a
    listener back)."""

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        if COUNTING[0] and self.asked(event) and event.command_name not in HOUSEKEEPING:
            SENT[("mongo", f"{event.command_name} {event.command.get(event.command_name)}")] += 1


pymongo.monitoring.register(Commands())


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, services: None) -> Iterator[FlaskClient]:
    """An API app with a store and broker prefix of its own, on clients made after the
    counters."""
    run = uuid.uuid4().hex[:6]
    set_config(None)
    config: Config = get_config().replace(mongo_db=f"binder_test_{RUN_ID}_start_{run}",
                                          broker_prefix=f"test-{RUN_ID}-start-{run}:")
    fresh_client(monkeypatch)
    send = redis.connection.Connection.send_packed_command

    def send_packed(self: Any, command: Any, check_health: bool = True) -> None:
        if COUNTING[0]:
            first = bytes(command[0] if isinstance(command, list) else command)
            SENT[("redis", first.split(b"\r\n")[2].decode())] += 1
        send(self, command, check_health)
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", send_packed)
    popen = subprocess.Popen.__init__

    def started(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        words = [str(word) for word in args] if isinstance(args, list | tuple) else [str(args)]
        sub = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), "")
        # The Git server runs in this process too: what it spawns is not the farm's.
        if COUNTING[0] and words[0].endswith("git") and sub != "http-backend":
            SENT[("git", sub)] += 1
        popen(self, args, *rest, **kwargs)
    monkeypatch.setattr(subprocess.Popen, "__init__", started)
    try:
        yield create_app(config).test_client()
    finally:
        COUNTING[0] = False
        db.get_client(config).drop_database(config.mongo_db)
        set_config(None)


def counted_start(client: FlaskClient, git_server: GitServer) -> tuple[dict[str, Any], list[str]]:
    """Start a build of a new two-file repository; its answer and the Git server's
    requests, the rest in ``SENT``."""
    repo = unique("start-costs")
    git_server.make_repo(f"github/owner/{repo}", {"requirements.txt": "\n", "README.md": "x\n"})
    SENT.clear()
    served = len(git_server.served)
    COUNTING[0] = True
    try:
        answer = client.post("/builds/", json={"repository": f"{git_server.url}/github/owner/"
                                                             f"{repo}"},
                             headers={"Authorization": API_KEY})
    finally:
        COUNTING[0] = False
    assert answer.status_code == 200, answer.json
    for (kind, what), count in sorted(SENT.items()):
        print(f"{kind:6} {count:3}  {what}")
    return answer.json, git_server.served[served:]


def test_a_start_costs_no_new_connection_and_one_ls_remote(client: FlaskClient,
                                                          git_server: GitServer) -> None:
    counted_start(client, git_server)  # the process's connections and indexes
    record, served = counted_start(client, git_server)
    assert (record["status"], record["phase"]) == ("running", "queued")
    # The ref is resolved once, by one ls-remote (refs, then the upload-pack).
    assert {what: count for (kind, what), count in SENT.items() if kind == "git"} == \
        {"ls-remote": 1}
    assert [line.split("?")[0] for line in served] == [
        f"GET /github/owner/{record['repository'].rsplit('/', 1)[-1]}.git/info/refs",
        f"POST /github/owner/{record['repository'].rsplit('/', 1)[-1]}.git/git-upload-pack"]
    # The step is sent on a connection the process already has.
    setup = {what: count for (kind, what), count in SENT.items()
             if kind == "redis" and what in CONNECTION_SETUP}
    assert setup == {}


def test_a_start_of_a_new_repository_reads_its_name_s_record_once_and_writes_it_twice(
        client: FlaskClient, git_server: GitServer) -> None:
    counted_start(client, git_server)  # the process's connections and indexes
    counted_start(client, git_server)
    assert {what: count for (kind, what), count in SENT.items() if kind == "mongo"} == {
        # the name: its claim, and no older record under it (common/name_store.py)
        "find names": 1, "find templates": 1, "insert names": 1,
        # that older record's look (1), the check that no build of the name runs (2:
        # by ``_id``, then by name for records from before), the cache's look for a
        # completed build of the image (1), the running builds for placement (1);
        # the record is then stored without being read again
        "find builds": 5, "insert builds": 1,
        # placement: the hosts (a name without a record was never built anywhere),
        # stored with the record (``placed_on``); then that the build was sent
        "find hosts": 1, "update builds": 1}


def test_a_started_build_is_stored_with_the_host_it_is_sent_to(
        client: FlaskClient, git_server: GitServer) -> None:
    record, _ = counted_start(client, git_server)
    stored = db.get_db().builds.find_one({"name": record["name"]})
    assert stored is not None and "placed_on" in stored and stored["enqueued"] is True
