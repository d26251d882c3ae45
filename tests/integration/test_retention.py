"""Retention against the real registry and Mongo wire server: a name keeps its newest
images (and its template's), older ones leave the registry; old logs leave MongoDB."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from common import build_store, db
from common.clock import utcnow
from common.config import Config, get_config
from common.log_store import read_lines
from common.models import Status
from tests.support.farm import ApiClient
from tests.support.registry import Registry
from workers.celery_app import create_celery
from workers.image_rejection import standing_for
from workers.registry import manifest_exists
from workers.retention import prune_images, prune_logs


def days_ago(days: float) -> dt.datetime:
    return utcnow() - dt.timedelta(days=days)


def record(name: str, image: str | None, ended: dt.datetime | None,
           status: str = "completed") -> dict[str, Any]:
    return {"build_id": uuid.uuid4().hex, "name": name, "status": status, "image_name": image,
            "start_time": ended or utcnow(), "end_time": ended, "attempt": 1}


@pytest.fixture
def config(services: None) -> Config:
    return get_config().replace(keep_images=2, log_retention_days=7)


@pytest.fixture
def name(config: Config) -> Iterator[str]:
    """A name of the test's own. Its records are not whole builds, and other tests list
    every build the farm's API serves, so they leave the store after the test."""
    name = f"retention-{uuid.uuid4().hex[:8]}"
    yield name
    mine = {"name": {"$regex": f"^{name}"}}
    for collection in (db.builds(config), db.attempts(config), db.templates(config)):
        collection.delete_many(mine)


@pytest.fixture
def own_store(config: Config) -> Iterator[Config]:
    """``config`` with a database of the test's own: image retention remembers how far its
    last pass got (``retention``), which other tests' passes would move."""
    mine = config.replace(mongo_db=f"retention-{uuid.uuid4().hex[:8]}")
    yield mine
    db.get_client(mine).drop_database(mine.mongo_db)


def test_a_name_keeps_its_newest_images_and_its_templates(own_store: Config, name: str) -> None:
    config, registry = own_store, Registry(own_store)
    repository = f"{config.image_prefix}{name}"
    image = {tag: f"{config.registry}/{repository}:{tag}" for tag in
             ("oldest", "old", "pinned", "newer", "newest", "running", "latest")}
    for each in image.values():
        registry.push(each)
    other = {tag: f"{config.registry}/{config.image_prefix}{name}-other:{tag}"
             for tag in ("only", "older", "oldest")}
    registry.push(other["only"])
    # Archived attempts, oldest first; the current record is the newest build.
    db.attempts(config).insert_many([
        record(name, image["oldest"], days_ago(30)), record(name, image["old"], days_ago(20)),
        record(name, image["pinned"], days_ago(10)),
        record(name, image["oldest"], days_ago(25)),  # same content built twice
        record(name, image["newer"], days_ago(5)), record(name, image["newest"], days_ago(1)),
        record(name, None, days_ago(1), status="failed")])
    db.builds(config).insert_many([record(name, image["running"], None, status="running"),
                                   record(f"{name}-other", other["only"], days_ago(40))])
    # The template still points at an old image (e.g. a rebuild of new content failed to
    # register): what a launcher would start is never deleted.
    db.templates(config).insert_one({"name": name, "image_name": image["pinned"]})

    deleted = prune_images(config)

    assert sorted(deleted) == sorted([image["oldest"], image["old"]])
    assert registry.tags(repository) == {"pinned", "newer", "newest", "running", "latest"}
    assert not manifest_exists(config, image["oldest"])
    assert manifest_exists(config, other["only"])  # one image of its name: kept
    pruned = {r["image_name"] for r in db.attempts(config).find(
        {"name": name, "image_pruned": {"$exists": True}})}
    assert pruned == {image["oldest"], image["old"]}
    assert prune_images(config) == []  # nothing left to do; pruned records are skipped
    assert prune_images(config.replace(keep_images=0)) == []  # 0 keeps everything

    # A later pass looks only at the names with a build completed since the last pass: a
    # new build of the name pushes its oldest unpinned image out, while the other name,
    # untouched, is not read (two older images stored behind the passes' back stay).
    db.attempts(config).insert_one(record(name, image["latest"], utcnow()))
    for tag, days in (("older", 50), ("oldest", 60)):
        registry.push(other[tag])
        db.attempts(config).insert_one(record(f"{name}-other", other[tag], days_ago(days)))
    assert prune_images(config) == [image["newer"]]
    assert manifest_exists(config, other["oldest"])
    # Another BINDER_KEEP_IMAGES makes the next pass a whole one again.
    assert sorted(prune_images(config.replace(keep_images=1))) == sorted(
        [image["newest"], other["older"], other["oldest"]])
    assert registry.tags(repository) == {"pinned", "running", "latest"}
    mark = db.get_db(config)["retention"].find_one({"_id": "images"})
    assert mark is not None and mark["keep"] == 1


def forced_rebuild_failed_in_build(config: Config, name: str, image: str,
                                   older: str) -> dict[str, Any]:
    """Store the builds of ``name``: an ``older`` image, then ``image`` (its template's),
    then a forced rebuild of the same content (the tag of ``image``) that failed in its
    build phase, ended as its worker ends it. Returns the build that made ``image``."""
    made = record(name, image, days_ago(1))
    db.attempts(config).insert_many([record(name, older, days_ago(2)), made])
    rebuild = {**record(name, image, None, status="running"), "phase": "building"}
    failed = {**rebuild, "status": "failed", "end_time": utcnow(),
              **build_store.ended_image(rebuild, Status.FAILED)}  # type: ignore[arg-type]
    db.builds(config).insert_one(failed)
    db.templates(config).insert_one({"name": name, "image_name": image})
    return made


def test_a_forced_rebuild_failed_before_its_push_leaves_the_image_its_predecessor_made(
        own_store: Config, config: Config, name: str, api: ApiClient) -> None:
    """The rebuild planned the tag its predecessor pushed and pushed nothing: it names no
    image, and the image stays its predecessor's, kept by retention and standing for
    the name (what a rejected push to that tag gives it back)."""
    registry = Registry(own_store)
    repository = f"{own_store.image_prefix}{name}"
    image, older = (f"{own_store.registry}/{repository}:{tag}" for tag in ("built", "older"))
    for each in (image, older):
        registry.push(each)
    forced_rebuild_failed_in_build(own_store, name, image, older)

    assert prune_images(own_store.replace(keep_images=1)) == [older]
    assert manifest_exists(own_store, image)
    assert not db.attempts(own_store).find_one({"image_name": image,
                                                "image_pruned": {"$exists": True}})

    # The same builds as the farm serves them.
    made = forced_rebuild_failed_in_build(config, name, image, older)
    assert build_store.completed_images(name)[image] == made["build_id"]
    assert standing_for(name)[image] == f"completed build {made['build_id']}"
    current = api.build(name)
    assert (current["status"], current["image-name"], current["planned-image"]) == (
        "failed", None, image)
    history = api.request("GET", f"/builds/{name}/history").json()
    assert [(a["status"], a["image-name"]) for a in history] == [
        ("failed", None), ("completed", image), ("completed", older)]


def test_logs_of_builds_that_ended_long_ago_are_deleted(config: Config, name: str,
                                                       api: ApiClient) -> None:
    old, recent, running = (record(name, None, days_ago(8), "failed"),
                            record(name, None, days_ago(6)),
                            record(f"{name}-r", None, None, "running"))
    db.attempts(config).insert_many([old, recent])
    db.builds(config).insert_one(running)
    logs = db.get_db(config).logs
    for each in (old, recent, running):
        logs.insert_many([{"_id": f"{each['build_id']}:{seq}", "build_id": each["build_id"],
                           "seq": seq, "last": seq, "lines": [f"line {seq}"]}
                          for seq in (1, 2)])

    # A pass reads only builds that ended since the last pass's cutoff; these records were
    # written with end times in the past, so the test forgets how far earlier passes got.
    db.get_db(config)["retention"].delete_one({"_id": "logs"})
    assert prune_logs(config) >= 1

    assert read_lines(old["build_id"]) == []
    assert [line for _, line in read_lines(recent["build_id"])] == ["line 1", "line 2"]
    assert len(read_lines(running["build_id"])) == 2
    stored = db.attempts(config).find_one({"build_id": old["build_id"]})
    assert stored is not None and stored.get("log_pruned")
    assert not (db.attempts(config).find_one({"build_id": recent["build_id"]}) or {}).get(
        "log_pruned")

    # The API says the log is gone, and why, rather than serving it empty.
    gone = api.request("GET", f"/builds/{name}/logs", params={"build-id": old["build_id"]})
    assert gone.status_code == 410, gone.text
    body = gone.json()
    assert body["type"] == "logPruned"
    assert body["error"].startswith(f"The log of {name} (build {old['build_id']}) was removed "
                                    f"on {stored['log_pruned']:%Y-%m-%d}: this farm keeps")
    assert "BINDER_LOG_RETENTION_DAYS" in body["error"] and body["suggestions"]
    kept = api.request("GET", f"/builds/{name}/logs", params={"build-id": recent["build_id"]})
    assert kept.status_code == 200 and kept.text == "line 1\nline 2\n"
    history = {attempt["build-id"]: attempt for attempt in api.request(
        "GET", f"/builds/{name}/history").json()}
    assert history[old["build_id"]]["log-pruned"].startswith(f"{stored['log_pruned']:%Y-%m-%d}")
    assert "log-pruned" not in history[recent["build_id"]]


def test_beat_runs_retention_on_its_interval(config: Config) -> None:
    schedule = create_celery(config.replace(retention_interval=120.0)).conf.beat_schedule
    assert schedule["retention"] == {"task": "binder.retention", "schedule": 120.0}
