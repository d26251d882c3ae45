"""What the farm asks of its store stays cheap however many builds it holds.

The embedded Mongo wire server reads a whole collection for every
``findAndModify``, whatever its filter, and for a filter holding ``$or``
(or another operator that no index answers): at 100,000 builds each such
call takes seconds, past ``BINDER_MONGO_TIMEOUT_MS``, and no build could
start. So while a build runs, is rebuilt, cancelled and read in every way
the API offers, the store's profiler records every command any farm process
sends; each one on a collection that grows with the builds must be a plain
question an index of that collection answers: no ``findAndModify``, no such
operator, and a condition on the first key of one of the collection's
indexes (``common/db.py``). The store's own ``explain`` cannot tell: it
reports a scan for a filter on two fields that it answers through an index.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo.database import Database

from bench.api_reads import FILL_TIMEOUT, fill_builds
from common import template_store
from common.clock import utcnow
from common.config import get_config, set_config
from common.db import INDEXES, PLAIN_COLLECTIONS, create_collections, get_client, get_db
from tests.integration.conftest import API_KEY, DATA_DIR, RUN_ID, unique
from tests.support.farm import ApiClient, Farm
from tests.support.git_server import GitServer
from tests.support.service_clients import base_image

#: Builds a crowded store holds: the scale of ``bench/``'s API scenario.
CROWD = 100_000
#: Collections with a record (or more) per build, build name or log line.
GROWING = ("builds", "attempts", "templates", "names", "logs")
#: Operators the embedded store answers by reading every record.
SCANNING = ("$or", "$nor", "$expr", "$where")


Question = tuple[str, dict[str, Any], dict[str, Any]]


def asked(command: dict[str, Any]) -> Iterator[Question]:
    """(what, filter, sort) of each question ``command`` puts to its collection."""
    for what, key in (("find", "filter"), ("count", "query"), ("distinct", "query"),
                      ("findAndModify", "query")):
        if what in command:
            yield what, command.get(key) or {}, command.get("sort") or {}
    for what, key in (("update", "updates"), ("delete", "deletes")):
        for statement in command.get(key) or []:
            yield what, statement.get("q") or {}, {}
    for stage in command.get("pipeline") or []:
        if "$match" in stage:
            yield "aggregate", stage["$match"], {}


def why_scanned(collection: str, what: str, query: dict[str, Any],
                sort: dict[str, Any] | None = None) -> str | None:
    """Why the embedded store reads every record of ``collection`` for this, if it does.

    A filter needs a condition on the first key of an index; an empty one
    sorted by such a key is the last resort of a page of builds
    (``build_store.list_builds``), asked only when no window of start times
    holds the page.
    """
    if what == "findAndModify":
        return "findAndModify"
    if any(f'"{operator}"' in json.dumps(query, default=str) for operator in SCANNING):
        return "an operator no index answers"
    leading = {"_id", *(next(iter(index.document["key"])) for index in INDEXES[collection])}
    if any(query.get(field) is not None for field in leading):
        return None
    if not query and next(iter(sort or {}), None) in leading:
        return None
    return "no condition on the first key of an index"


@pytest.fixture
def profiled(api: ApiClient) -> Iterator[Database[dict[str, Any]]]:
    """The farm's store, recording every command sent to it inside the block.

    A scrape first: the first one in a store's life counts its templates once
    (``template_store.count_templates``); every later one reads the tally."""
    assert api.request("GET", "/metrics", auth=False).status_code == 200
    db = get_db()
    db.command("profile", 0)
    db.drop_collection("system.profile")
    db.command("profile", 2)
    try:
        yield db
    finally:
        db.command("profile", 0)


def test_a_build_asks_the_store_only_what_its_indexes_answer(
        profiled: Database[dict[str, Any]], api: ApiClient, git_server: GitServer,
        repo_url: str) -> None:
    repo = unique("queries")
    path = f"github/quinn/{repo}"
    git_server.make_repo(path, {"requirements.txt": "", "README.md": "first\n"})
    record = api.start_and_wait(f"{repo_url}/quinn/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    name = record["name"]
    git_server.push_commit(path, {"README.md": "second\n"})
    assert api.start_and_wait(f"{repo_url}/quinn/{repo}")["status"] == "completed"
    assert api.start(f"{repo_url}/quinn/{repo}").json()["cached"] is True
    git_server.push_commit(path, {"README.md": "third\n"})
    assert api.start(f"{repo_url}/quinn/{repo}").status_code == 200
    assert api.request("DELETE", f"/builds/{name}").status_code == 200
    assert api.wait(name, 120)["status"] == "cancelled"
    for path_read in (f"/builds/{name}", f"/builds/{name}/history", f"/builds/{name}/logs",
                      f"/builds/?repository={repo_url}/quinn/{repo}", "/builds/?status=failed",
                      "/builds/", "/templates/", f"/templates/{name}", "/queue/", "/hosts/",
                      "/workers/", "/metrics"):
        assert api.request("GET", path_read).status_code == 200, path_read
    profiled.command("profile", 0)

    entries = [(entry["ns"].partition(".")[2], entry["command"])
               for entry in profiled["system.profile"].find()]
    commands = [(collection, command) for collection, command in entries
                if collection in GROWING]
    questions = [(collection, *question) for collection, command in commands
                 for question in asked(command)]
    assert {"find", "update"} <= {what for collection, what, _, _ in questions
                                  if collection == "builds"}
    problems = {f"{what} on {collection} ({reason}): {query} {sort}"
                for collection, what, query, sort in questions
                if (reason := why_scanned(collection, what, query, sort))}
    assert not problems, "\n".join(sorted(problems))


def test_the_check_sees_what_the_store_reads_whole() -> None:
    assert why_scanned("builds", "findAndModify", {"build_id": "b"}) == "findAndModify"
    assert why_scanned("builds", "update", {"build_id": "b", "$or": [{"a": 1}, {"b": 2}]}) \
        == "an operator no index answers"
    assert why_scanned("builds", "find", {"attempt": 1, "phase": "queued"}) \
        == "no condition on the first key of an index"
    assert why_scanned("builds", "find", {"status": "running", "attempt": 1}) is None
    assert why_scanned("attempts", "find", {"name": "n", "build_id": "b"}) is None
    assert why_scanned("logs", "find", {"_id": "x"}) is None
    assert why_scanned("builds", "find", {}, {"start_time": -1, "_id": -1}) is None
    assert why_scanned("builds", "find", {}, {"phase": 1}) \
        == "no condition on the first key of an index"


@pytest.fixture(scope="module")
def crowded_farm(farm_env: dict[str, str], services: None) -> Iterator[ApiClient]:
    """A farm of its own whose store already holds ``CROWD`` completed builds."""
    database = f"binder_test_{RUN_ID}_crowded"
    db = get_client()[database]
    farm = Farm({**farm_env, "BINDER_MONGO_DB": database,
                 "BINDER_BROKER_PREFIX": f"test-{RUN_ID}-crowded:",
                 "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-crowded-",
                 "BINDER_DATA_DIR": str(DATA_DIR / "farm-crowded")}, DATA_DIR / "logs-crowded")
    try:
        with pymongo.timeout(FILL_TIMEOUT):
            for collection, indexes in INDEXES.items():
                db[collection].create_indexes(indexes)
        fill_builds(db.builds, get_config().registry, CROWD)
        _, url = farm.start_api()
        farm.start_worker("test-crowded")
        yield ApiClient(url, API_KEY)
    finally:
        farm.stop()
        with pymongo.timeout(FILL_TIMEOUT):
            get_client().drop_database(database)


def test_a_farm_whose_store_holds_many_builds_builds_and_cancels(
        crowded_farm: ApiClient, git_server: GitServer, repo_url: str) -> None:
    """Each phase's claim, heartbeat and hand-on is found through an index: with
    ``findAndModify`` or ``$or`` each took seconds here, and no build started."""
    repo = unique("crowded")
    path = f"github/cora/{repo}"
    git_server.make_repo(path, {"requirements.txt": "", "README.md": "first\n"})
    record = crowded_farm.start_and_wait(f"{repo_url}/cora/{repo}", timeout=300)
    assert record["status"] == "completed", (record, crowded_farm.logs(record["name"]))
    assert record["attempt"] == 1
    git_server.push_commit(path, {"Dockerfile": f"FROM {base_image()}\nRUN sleep 300\n"})
    assert crowded_farm.start(f"{repo_url}/cora/{repo}").status_code == 200
    assert crowded_farm.request("DELETE", f"/builds/{record['name']}").status_code == 200
    assert crowded_farm.wait(record["name"], 120)["status"] == "cancelled"
    listed = crowded_farm.request("GET", f"/builds/?repository={repo_url}/cora/{repo}")
    assert [build["status"] for build in listed.json()] == ["cancelled"]


@pytest.fixture
def scratch_store(services: None) -> Iterator[Database[dict[str, Any]]]:
    """A database of its own, which this process's store calls use meanwhile."""
    kept = get_config()
    name = f"binder_test_{RUN_ID}_{unique('scratch')}".replace("-", "_")
    set_config(dataclasses.replace(kept, mongo_db=name))
    try:
        yield get_db()
    finally:
        set_config(kept)
        get_client().drop_database(name)


def template(name: str) -> dict[str, Any]:
    return {"name": name, "image_name": f"registry.test/{name}:1", "port": 8888}


def test_templates_are_counted_by_a_tally_raised_once_per_name(
        scratch_store: Database[dict[str, Any]]) -> None:
    # A store from before the tally holds templates: the first count starts it.
    scratch_store.templates.insert_many([template("old-a"), template("old-b")])
    assert template_store.count_templates() == 2
    scratch_store.templates.insert_one(template("uncounted"))  # past the tally: not seen
    assert template_store.count_templates() == 2
    template_store.save_template(template("new"))  # type: ignore[arg-type]
    assert template_store.count_templates() == 3
    template_store.save_template({**template("new"), "port": 9999})  # type: ignore[arg-type]
    assert template_store.count_templates() == 3
    assert scratch_store.metrics.find_one(template_store.TALLY) == {**template_store.TALLY,
                                                                      "count": 3}


def test_a_long_listing_holds_the_templates_saved_last_by_name(
        scratch_store: Database[dict[str, Any]]) -> None:
    for name in ("e", "d", "c", "b", "a"):
        template_store.save_template(template(name))  # type: ignore[arg-type]
    # "e" and "d" were last saved ten days ago: outside every window shorter than that.
    scratch_store.templates.update_many({"name": {"$in": ["e", "d"]}}, {"$set": {
        "time_modified": utcnow() - dt.timedelta(days=10)}})
    scratch_store.templates.update_one({"name": "b"}, {"$set": {
        "time_modified": utcnow() - dt.timedelta(minutes=5)}})

    def names(limit: int) -> list[str]:
        return [found["name"] for found in template_store.list_templates(limit)]
    assert names(10) == ["a", "b", "c", "d", "e"]
    assert names(2) == ["a", "c"]
    assert names(3) == ["a", "b", "c"]
    assert names(4) in (["a", "b", "c", "d"], ["a", "b", "c", "e"])


def test_preparing_a_store_makes_every_collection_the_farm_writes(services: None) -> None:
    """Collections without indexes too: a fresh embedded store made to create one by
    several processes at once can hang (``common.db.prepare_store``)."""
    database = f"binder_test_{RUN_ID}_prepared"
    try:
        create_collections(get_client()[database])
        made = set(get_client()[database].list_collection_names())
        assert {*INDEXES, *PLAIN_COLLECTIONS} <= made
        assert {"metrics", "reaper"} <= set(PLAIN_COLLECTIONS)
    finally:
        get_client().drop_database(database)
