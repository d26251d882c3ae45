"""What one small build costs the farm, phase by phase, counted in-process against the
real services: MongoDB commands, Redis round trips, subprocesses, engine and registry
requests, each with the farm's functions that asked (``pytest -s`` prints them, and a
profile of the phases)."""

from __future__ import annotations

import collections
import cProfile
import io
import pstats
import subprocess
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo.monitoring
import pytest
import redis.connection
import requests

from common import build_store, db, docker_connection
from common.config import Config, get_config, set_config
from common.models import STEPS, Phase, Status
from tests.integration.conftest import RUN_ID, unique
from tests.support.git_server import GitServer
from tests.support.store_commands import HOUSEKEEPING, StartedCommands, fresh_client
from workers.celery_app import create_celery
from workers.phase_runner import Outcome, run_phase
from workers.pipeline import send_next, step_function
from workers.providers import parse_spec

COUNTS: collections.Counter[tuple[str, str]] = collections.Counter()
CALLERS: collections.Counter[tuple[str, str, str]] = collections.Counter()


def caller() -> str:
    """The farm's functions that made the call, innermost last."""
    frames = [f for f in traceback.extract_stack()
              if ("/workers/" in f.filename or "/common/" in f.filename)
              and "/site-packages/" not in f.filename]
    return " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.name}" for f in frames[::-1][:4])
PHASE = ["none"]


class Commands(StartedCommands):
    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        if self.asked(event) and event.command_name not in HOUSEKEEPING:
            coll = event.command.get(event.command_name)
            COUNTS[(PHASE[0], f"mongo {event.command_name} {coll}")] += 1
            CALLERS[(PHASE[0], f"mongo {event.command_name} {coll}", caller())] += 1


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch, services: None) -> Iterator[Config]:
    run = uuid.uuid4().hex[:6]
    set_config(None)
    config = get_config().replace(mongo_db=f"binder_test_{RUN_ID}_costs_{run}",
                                  broker_prefix=f"test-{RUN_ID}-costs-{run}:",
                                  worker_id="costs-a",
                                  # Only the beats the phases ask for (``PhaseGuard.check``):
                                  # the guard's own come with time, not with work.
                                  heartbeat_interval=600)
    set_config(config)
    pymongo.monitoring.register(Commands())
    fresh_client(monkeypatch)
    # A worker process learns its engine's API version once: this one learns it here.
    monkeypatch.setattr(docker_connection, "_api_versions", {})
    send = redis.connection.Connection.send_packed_command

    def send_packed(self: Any, command: Any, check_health: bool = True) -> None:
        COUNTS[(PHASE[0], "redis round trip")] += 1
        first = command[0] if isinstance(command, list) else command
        name = bytes(first)[:60].split(b"\r\n")[2:3]
        CALLERS[(PHASE[0], f"redis {name}", caller())] += 1
        send(self, command, check_health)
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", send_packed)
    popen = subprocess.Popen.__init__

    def started(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        words = [str(w) for w in (args if isinstance(args, list | tuple) else [args])]
        name = words[0].rsplit("/", 1)[-1]
        sub = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), "")
        COUNTS[(PHASE[0], f"subprocess {name} {sub if name == 'git' else ''}".strip())] += 1
        popen(self, args, *rest, **kwargs)
    monkeypatch.setattr(subprocess.Popen, "__init__", started)
    http = requests.Session.send

    def sent(self: Any, request: Any, **kwargs: Any) -> Any:
        url = str(request.url)
        if url.startswith("http+docker"):
            parts = url.split("/", 3)[-1].split("?")[0].split("/")
            words = [parts[1] if len(parts) > 1 else parts[0], *parts[2:][-1:]]
            COUNTS[(PHASE[0], f"engine {request.method} {'/'.join(words)}")] += 1
        else:
            COUNTS[(PHASE[0], f"http {request.method} {url.split('/')[2]}")] += 1
        return http(self, request, **kwargs)
    monkeypatch.setattr(requests.Session, "send", sent)
    try:
        yield config
    finally:
        db.get_client(config).drop_database(config.mongo_db)
        set_config(None)


def test_one_small_build(counting: Config, git_server: GitServer) -> None:
    config = counting
    repo = unique("costs")
    commit = git_server.make_repo(f"github/owner/{repo}",
                                  {"requirements.txt": "\n", "README.md": "x\n"})["main"]
    spec = parse_spec(f"{git_server.url}/github/owner/{repo}", config)
    record = build_store.create_build(spec.preferred_name, {
        "provider": spec.provider, "repository": spec.repository, "ref": spec.ref,
        "spec": spec.text, "force": False, "display_name": spec.display_name,
        "resolved_commit": commit})  # as the API starts it
    celery = create_celery(config)
    profile = cProfile.Profile()
    for step in STEPS:
        PHASE[0] = step.name

        def hand_on(current: Any, step: Any = step) -> None:
            send_next(celery, config, step, current)
        profile.enable()
        outcome = run_phase(config, step, record["build_id"], 1, step_function(step),
                            None if step is STEPS[-1] else hand_on)
        profile.disable()
        assert outcome in (Outcome.CONTINUE, Outcome.DONE), outcome
    ended = build_store.find_by_id(record["build_id"])
    assert ended is not None and ended["status"] == Status.COMPLETED.value, ended
    assert ended["phase"] == Phase.FINISHED.value
    out = io.StringIO()
    for (phase, what), count in sorted(COUNTS.items()):
        print(f"{phase:10} {count:4}  {what}", file=out)
    totals: collections.Counter[str] = collections.Counter()
    for (_, what), count in COUNTS.items():
        totals[what.split()[0]] += count
    print(dict(totals), file=out)
    for (phase, what, where), count in sorted(CALLERS.items()):
        print(f"{phase:10} {count:4}  {what:28} {where}", file=out)
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(60)
    print(out.getvalue())
    # The engine describes the built image once (workers/built_image.py).
    inspections = {phase: count for (phase, what), count in COUNTS.items()
                   if what == "engine GET images/json"}
    assert inspections == {"build": 1}
    # The fetch asks the Git server for the commit the API resolved, no ref again (two
    # requests: its refs, then the pack; the server spawns one http-backend for each),
    # and runs git three times: fetch, list the tree, check out.
    fetch_git = {what: count for (phase, what), count in COUNTS.items()
                 if phase == "fetch" and what.startswith("subprocess git")}
    assert fetch_git == {"subprocess git fetch": 1, "subprocess git ls-tree": 1,
                         "subprocess git checkout": 1, "subprocess git http-backend": 2}
    # The engine's API version is asked once per process, by its first client.
    versions = {phase: count for (phase, what), count in COUNTS.items()
                if what == "engine GET version"}
    assert versions == {"build": 1}
    # The log's last line number is asked of its stores by fetch only: each later phase
    # numbers on from where the phase before left it (``build_store.carried_log_end``).
    log_reads = {phase for (phase, what, where) in CALLERS
                 if "_last_seq" in where and ("find logs" in what or "XREVRANGE" in what)}
    assert log_reads == {"fetch"}
    # A push to a new tag asks the registry what the tag held, not the store what names it.
    standing = [what for (phase, what), count in COUNTS.items()
                if phase == "push" and what in ("mongo find attempts", "mongo find templates")]
    assert standing == []
