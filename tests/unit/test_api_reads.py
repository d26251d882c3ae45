"""API reads fetch only what they serve; the API's process count follows the cores."""

from __future__ import annotations

import datetime as dt

from api.schemas.builds import SERVED_BUILD_KEYS, BuildSchema
from common.build_store import RECORD_KEYS, _projection, new_record
from common.config import load_config
from workers.cli.server import api_workers

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def full_record() -> dict:
    record = dict(new_record("o-r", {
        "display_name": "o/r", "provider": "github", "repository": "https://github.com/o/r",
        "ref": None, "spec": "https://github.com/o/r", "force": False,
        "status": "completed", "phase": "finished", "end_time": NOW, "commit": "a" * 40,
        "content_id": "a" * 40, "image_name": "r/i:a", "image_source": "r/i:a",
        "config": "requirements.txt", "worker": "h", "workers": ["h"],
        "phases": {"fetching": {"start": NOW, "end": NOW, "worker": "h"}}}))
    record.update(_id="oid", binder_yml={"port": 1}, config_files=["requirements.txt"],
                  deliveries={"1": {"fetching": 1}}, lease=None, buildpack="requirements",
                  image_pruned=NOW, log_pruned=NOW)
    return record


def projected(record: dict, projection: dict[str, int]) -> dict:
    """``record`` as the store answers a find with ``projection`` (flags only)."""
    if any(projection[key] for key in projection if key != "_id"):
        return {key: value for key, value in record.items() if projection.get(key)}
    return {key: value for key, value in record.items() if projection.get(key, 1)}


def test_the_projection_serves_exactly_what_the_whole_record_serves() -> None:
    record = full_record()
    record.update(dict.fromkeys(RECORD_KEYS - set(record), "internal"))
    projection = _projection(SERVED_BUILD_KEYS)
    assert projection is not None and projection["_id"] == 0
    answer = projected(record, projection)
    schema = BuildSchema()
    assert schema.dump(answer) == schema.dump(record)
    assert schema.dump(answer)["log-pruned"] == schema.dump(answer)["image-pruned"] \
        == NOW.isoformat()
    assert set(answer) == set(SERVED_BUILD_KEYS)
    assert {"deliveries", "binder_yml", "lease", "heartbeat", "_id"}.isdisjoint(answer)
    assert _projection(None) is None


def test_the_projection_is_the_shorter_spec() -> None:
    # Most of a record is served: its other keys are left out, not the served listed.
    served = _projection(SERVED_BUILD_KEYS)
    assert served is not None and set(served.values()) == {0}
    assert len(served) <= len(RECORD_KEYS) - len(SERVED_BUILD_KEYS) + 1
    # A few keys are listed.
    few = _projection(("name", "build_id", "log_pruned"))
    assert few == {"_id": 0, "name": 1, "build_id": 1, "log_pruned": 1}
    record = full_record()
    assert projected(record, few) == {"name": "o-r", "build_id": record["build_id"],
                                      "log_pruned": NOW}


def test_api_processes_follow_the_core_count_unless_set() -> None:
    assert api_workers(load_config(environ={}), cores=2) == 5
    assert api_workers(load_config(environ={}), cores=8) == 17
    assert api_workers(load_config(environ={"BINDER_API_WORKERS": "3"}), cores=8) == 3
