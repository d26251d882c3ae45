"""The farm's real processes log one logfmt line per record: a build's worker lines name
its host, phase and attempt, and the API's access line names the build it served."""

from __future__ import annotations

import shlex

from tests.support.api_cases import plain_repo
from tests.support.farm import ApiClient, Farm
from tests.support.git_server import GitServer
from workers.process_logs import FIELDS


def records(farm: Farm, process: str) -> list[dict[str, str]]:
    """The log records of one of the farm's processes (Celery's start-up banner and
    Python's warnings are not records and are left out)."""
    [log] = [p.log_path for p in farm.processes if p.name == process]
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if line.startswith("time=")]
    parsed = [dict(part.split("=", 1) for part in shlex.split(line)) for line in lines]
    for fields in parsed:
        assert list(fields)[:len(FIELDS)] == list(FIELDS) and "msg" in fields, fields
    return parsed


def test_a_build_is_followed_through_every_process_by_its_name(
        api: ApiClient, farm: Farm, git_server: GitServer, repo_url: str) -> None:
    name = api.start(plain_repo(git_server, repo_url, owner="logs")).json()["name"]
    assert api.wait(name)["status"] == "completed"
    worker = [r for r in records(farm, "worker-test-a") if r["build"] == name]
    assert {r["phase"] for r in worker} >= {"fetch", "detect", "build", "push", "template"}, \
        worker
    assert {(r["host"], r["attempt"]) for r in worker} == {("test-a", "1")}
    # Celery's own lines about the build's tasks carry their shown names too.
    assert any(f"binder.build:{name}" in r["msg"] for r in worker + records(
        farm, "worker-test-a"))
    served = [r for r in records(farm, "api") if r["logger"] == "gunicorn.access"
              and r["build"] == name]
    assert any(f'path="/builds/{name}"' in r["msg"] and "status=200" in r["msg"]
               for r in served), served
