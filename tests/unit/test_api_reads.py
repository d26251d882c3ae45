"""API reads serve only their schema's fields from records keyed by name; the API's
process count follows the cores."""

from __future__ import annotations

import datetime as dt

from api.schemas.builds import BuildSchema
from common.build_store import new_record
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


def test_a_record_is_stored_under_its_build_name() -> None:
    assert new_record("o-r", {"repository": "https://github.com/o/r"})["_id"] == "o-r"


def test_reads_serve_only_the_schema_fields() -> None:
    record = full_record()
    record.update(heartbeat=NOW, enqueued_at=NOW, resolved_commit="b" * 40, broker_epoch=3)
    answer = BuildSchema().dump(record)
    assert {"deliveries", "binder_yml", "lease", "heartbeat", "enqueued_at",
            "resolved_commit", "broker_epoch", "_id"}.isdisjoint(answer)
    assert answer["log-pruned"] == answer["image-pruned"] == NOW.isoformat()
    assert answer["name"] == "o-r" and answer["phases"]["fetching"]["worker"] == "h"


def test_a_failed_build_serves_its_suggestions_and_others_an_empty_list() -> None:
    failed = full_record()
    failed.update(status="failed", error="Bad YAML.", suggestions=["Fix the YAML syntax."])
    assert BuildSchema().dump(failed)["suggestions"] == ["Fix the YAML syntax."]
    assert BuildSchema().dump(full_record())["suggestions"] == []
    older = full_record()
    del older["suggestions"]  # stored before records kept suggestions
    assert BuildSchema().dump(older)["suggestions"] == []


def test_api_processes_follow_the_core_count_unless_set() -> None:
    assert api_workers(load_config(environ={}), cores=2) == 5
    assert api_workers(load_config(environ={}), cores=8) == 17
    assert api_workers(load_config(environ={"BINDER_API_WORKERS": "3"}), cores=8) == 3
