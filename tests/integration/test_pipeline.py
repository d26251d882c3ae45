"""Builds end to end: repository to image in the registry, with a template."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from typing import Any

import docker
import docker.errors
import pytest

from common import build_store
from common.clock import utcnow
from common.config import get_config
from common.errors import BuildFailure
from common.models import Phase
from tests.integration.conftest import TEST_PACKAGE, Served, unique
from tests.support.farm import ApiClient, Farm
from tests.support.git_server import GitServer
from tests.support.images import in_registry, run_in_image
from tests.support.processes import wait_until
from tests.support.service_clients import base_image
from workers import guard as guard_module
from workers import verify
from workers.guard import PhaseGuard
from workers.verify import FARM_LABEL, VERIFY_LABEL, farm_of, remove_leftovers


def test_repo_without_config_builds_base_image_plus_repo(api: ApiClient, git_server: GitServer,
                                                         repo_url: str) -> None:
    repo = unique("plain")
    shas = git_server.make_repo(f"github/alice/{repo}", {"notebook.ipynb": "{}",
                                                         "README.md": "hi"})
    record = api.start_and_wait(f"{repo_url}/alice/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["name"] == f"alice-{repo}"
    assert record["commit"] == shas["main"]
    assert record["config"] is None
    image = record["image-name"]
    assert image.rpartition(":")[2].startswith(f"{shas['main']}-")  # commit, base and recipe
    assert in_registry(image)
    assert "planned-image" not in record, record
    tmpl = api.template(record["name"])
    assert tmpl["image-name"] == image and tmpl["port"] == 8888
    assert "jupyter" in tmpl["command"]
    assert run_in_image(image, "id -u; cat /home/jovyan/README.md") == "1000\nhi"
    # Jupyter's server imports jsonschema's format checkers: none of them may compile
    # grammars at import (rfc3987-syntax made every start 0.7 s slower).
    assert run_in_image(image, "/usr/bin/python3 -c 'import sys, jupyter_server.serverapp; "
                               "print(sorted({\"rfc3987_syntax\", \"lark\"} & set(sys.modules)))'"
                        ).strip() == "[]"
    log = api.logs(record["name"])
    assert "verified: the image serves on port 8888" in log
    phases = record["phases"]
    assert {p["worker"] for p in phases.values()} == {"test-a"}


def test_requirements_repo_installs_from_local_index(api: ApiClient, git_server: GitServer,
                                                     repo_url: str) -> None:
    repo = unique("reqs")
    git_server.make_repo(f"github/bob/{repo}", {"requirements.txt": f"{TEST_PACKAGE}==1.0\n",
                                                 "analysis.py": "print(1)\n"})
    record = api.start_and_wait(f"{repo_url}/bob/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["config"] == "requirements.txt"
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.GREETING)'")
    assert output.strip() == "hello from the local index"


BASE_IMAGE = base_image()


def test_dockerfile_repo_builds_its_own_dockerfile(api: ApiClient, git_server: GitServer,
                                                   repo_url: str) -> None:
    repo = unique("docker")
    git_server.make_repo(f"github/carol/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nUSER root\nRUN echo built-by-dockerfile > /marker\n"
                      "USER ${NB_USER}\n",
    })
    record = api.start_and_wait(f"{repo_url}/carol/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["config"] == "Dockerfile"
    assert run_in_image(record["image-name"], "cat /marker").strip() == "built-by-dockerfile"
    # Its verification container goes too, after the build (in the background).
    assert wait_until(lambda: not verification_containers(record["build-id"]), 60)


def verification_containers(build_id: str) -> list[str]:
    client = docker.from_env()
    try:
        return [c.id for c in client.containers.list(
            all=True, filters={"label": f"{VERIFY_LABEL}={build_id}"})]
    finally:
        client.close()


def test_verification_containers_of_builds_that_no_longer_run_are_removed(services: None) -> None:
    """What a worker that died while verifying left: removed as the next one starts;
    another farm's on the same engine are left to it."""
    client = docker.from_env()
    config = get_config()
    ids = {state: f"{state}-{uuid.uuid4().hex[:8]}" for state in ("ended", "running", "other")}
    farms = {"ended": farm_of(config), "running": farm_of(config),
             "other": farm_of(config.replace(mongo_db=f"{config.mongo_db}-another"))}
    made = {state: client.containers.run(
        BASE_IMAGE, ["sleep", "600"], detach=True, network_mode="none",
        labels={VERIFY_LABEL: build_id, FARM_LABEL: farms[state]})
        for state, build_id in ids.items()}
    try:
        removed = remove_leftovers(config, lambda build_id: build_id == ids["running"])
        assert removed >= 1
        assert verification_containers(ids["ended"]) == []
        assert verification_containers(ids["running"]) == [made["running"].id]
        assert verification_containers(ids["other"]) == [made["other"].id]
    finally:
        for container in made.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        client.close()


def test_verification_leaves_no_volume_of_the_image_behind(
        services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image's VOLUME gives its verification container an anonymous volume: removed
    with it, or every build of such a repository would leave one on the engine."""
    client = docker.from_env()
    config = get_config()
    maker = client.containers.run(BASE_IMAGE, ["true"], detach=True, network_mode="none")
    maker.wait()
    image = maker.commit(changes=['VOLUME ["/data"]',
                                  'CMD ["python3", "-m", "http.server", "8888"]'])
    maker.remove()
    volumes: list[str] = []
    original = verify.discard

    def discard(container: Any) -> None:
        container.reload()
        volumes.extend(m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume")
        original(container)

    monkeypatch.setattr(verify, "discard", discard)
    monkeypatch.setattr(guard_module.build_store, "heartbeat", lambda *args: {})
    guard = PhaseGuard(uuid.uuid4().hex, 1, Phase.PUSHING,
                       utcnow() + dt.timedelta(minutes=5), 5, 60)
    try:
        verify.verify_image(config, image.id, 8888, None, f"volume-{uuid.uuid4().hex[:8]}",
                            lambda line: None, guard)
        assert wait_until(lambda: bool(volumes), timeout=30)
        assert len(volumes) == 1

        def gone(name: str) -> bool:
            try:
                client.volumes.get(name)
            except docker.errors.NotFound:
                return True
            return False

        assert wait_until(lambda: gone(volumes[0]), timeout=30)
    finally:
        for name in volumes:
            with contextlib.suppress(docker.errors.DockerException):
                client.volumes.get(name).remove(force=True)
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(image.id, force=True)
        client.close()


def verify_command(config: Any, command: str, monkeypatch: pytest.MonkeyPatch,
                   setup: str = "true", path: str = "") -> None:
    """Verify an image of the base image (changed by the shell line ``setup``, with
    ``path`` as PATH if given) whose command is ``command`` (a shell line), with 8 MiB
    of verification disk."""
    client = docker.from_env()
    maker = client.containers.run(BASE_IMAGE, ["sh", "-c", setup], detach=True,
                                  network_mode="none")
    assert maker.wait()["StatusCode"] == 0
    image = maker.commit(changes=[f"CMD {json.dumps(['sh', '-c', command])}",
                                  *([f"ENV PATH={path}"] if path else [])])
    maker.remove()
    monkeypatch.setattr(verify, "VERIFY_DISK", 8 * 1024**2)
    monkeypatch.setattr(guard_module.build_store, "heartbeat", lambda *args: {})
    guard = PhaseGuard(uuid.uuid4().hex, 1, Phase.PUSHING,
                       utcnow() + dt.timedelta(minutes=5), 5, 60)
    try:
        verify.verify_image(config, image.id, 8888, None, f"disk-{uuid.uuid4().hex[:8]}",
                            lambda line: None, guard)
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(image.id, force=True)
        client.close()


def test_no_file_grows_past_the_verification_disk(
        services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image serves only when its 16 MiB file was cut at 8 MiB (RLIMIT_FSIZE)."""
    verify_command(get_config(), "head -c 16777216 /dev/zero > /tmp/big; "
                   "[ $(stat -c %s /tmp/big) -eq 8388608 ] && "
                   "exec python3 -m http.server 8888", monkeypatch)


def test_an_image_writing_past_the_verification_disk_fails_its_verification(
        services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many files, each under the per-file bound, together over it."""
    with pytest.raises(BuildFailure, match="^The image wrote more than 8M to its disk while "
                                           "it was verified"):
        verify_command(get_config().replace(verify_timeout=20),
                       "for i in 1 2 3 4 5 6; do head -c 4194304 /dev/zero > /tmp/f$i; done; "
                       "exec sleep 600", monkeypatch)


def test_a_probe_the_image_makes_print_without_end_fails_the_verification(
        services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe runs the image's own python3: here one that prints forever."""
    with pytest.raises(BuildFailure, match="^Probing port 8888 inside the image printed "
                                           "more than 64K"):
        verify_command(get_config().replace(verify_timeout=60), "exec sleep 600", monkeypatch,
                       setup="mkdir /tmp/loud && printf '#!/bin/sh\\nexec yes\\n' > "
                             "/tmp/loud/python3 && chmod +x /tmp/loud/python3",
                       path="/tmp/loud:/usr/bin:/bin")


def test_what_a_verified_image_prints_is_kept_to_its_last_mib(
        services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine writes a container's output to its own disk: 20 MB printed before the
    image serves leave at most about a MiB there."""
    sizes: list[int] = []
    original = verify.discard

    def discard(container: Any) -> None:
        container.reload()
        sizes.append(os.path.getsize(container.attrs["LogPath"]))
        original(container)

    monkeypatch.setattr(verify, "discard", discard)
    verify_command(get_config(), "head -c 20000000 /dev/zero | tr '\\0' x | fold -w 1000; "
                   "exec python3 -m http.server 8888", monkeypatch)
    assert wait_until(lambda: bool(sizes), timeout=30)
    assert 0 < sizes[0] <= 1024**2 + 4096


def test_a_verification_stands_for_images_that_differ_only_in_inert_files(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    """A second repository with the same environment is not started again; one whose
    hidden files change how it starts is, and fails."""
    environment = {"requirements.txt": f"{TEST_PACKAGE}==1.0\n# {unique('env')}\n"}
    names = {}
    for which, files in (("first", {"README.md": "first\n"}),
                         ("second", {"analysis.py": "print(2)\n", ".github/ci.yml": "{}\n"}),
                         ("hidden", {".jupyter/jupyter_server_config.py":
                                     "import os\nos._exit(7)\n"})):
        repo = unique(f"verified-{which}")
        git_server.make_repo(f"github/vera/{repo}", {**environment, **files})
        record = api.start_and_wait(f"{repo_url}/vera/{repo}")
        names[which] = record["name"]
        log = api.logs(record["name"])
        if which == "first":
            assert record["status"] == "completed", (record, log)
            assert "verifying: starting" in log
            assert "verified: the image serves on port 8888" in log
        elif which == "second":
            assert record["status"] == "completed", (record, log)
            assert "verifying: starting" not in log
            assert (f"verified: the image serves on port 8888, as the image of build "
                    f"{names['first']} did") in log
            assert not verification_containers(record["build-id"])
        else:
            assert record["status"] == "failed", (record, log)
            assert "verifying this image: the repository holds .jupyter" in log
            assert record["error"].startswith("The image exited (status 7)"), record["error"]


def test_binder_yml_sets_limits_and_services_in_template(api: ApiClient, git_server: GitServer,
                                                         repo_url: str) -> None:
    repo = unique("meta")
    git_server.make_repo(f"github/dave/{repo}", {
        ".binder.yml": "limits:\n  memory: 512M\n  cpu: 0.5\nhardware:\n  gpu: 1\n"
                       "services:\n  - name: postgres\n    version: '15'\n"
                       "    params: {db: demo}\n",
    })
    record = api.start_and_wait(f"{repo_url}/dave/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    tmpl = api.template(record["name"])
    assert tmpl["limits"] == {"memory": "512M", "cpu": 0.5}
    assert tmpl["hardware"] == {"gpu": 1}
    assert tmpl["services"] == [{"name": "postgres", "version": "15", "params": {"db": "demo"}}]
    assert tmpl["image-source"] == record["image-name"]
    assert tmpl["time-created"] and tmpl["time-modified"]


def test_binder_yml_in_the_binder_folder_and_a_dot_binder_folder_named_as_ignored(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = unique("meta-folder")
    git_server.make_repo(f"github/dave/{repo}", {
        "binder/.binder.yml": "limits: {memory: 384M}\n",
        ".binder/apt.txt": "cowsay\n",
    })
    record = api.start_and_wait(f"{repo_url}/dave/{repo}")
    log = api.logs(record["name"])
    assert record["status"] == "completed", (record, log)
    assert api.template(record["name"])["limits"]["memory"] == "384M"
    assert "read binder/.binder.yml" in log
    assert "ignoring .binder: the files are read from binder/" in log


def test_all_three_configs_build_from_requirements(api: ApiClient, git_server: GitServer,
                                                   repo_url: str) -> None:
    repo = unique("three")
    git_server.make_repo(f"github/erin/{repo}", {
        "requirements.txt": f"{TEST_PACKAGE}\n",
        "environment.yml": "dependencies: [does-not-matter]\n",
        "Dockerfile": "FROM scratch-that-is-not-used\n",
    })
    record = api.start_and_wait(f"{repo_url}/erin/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["config"] == "requirements.txt"


def test_branch_and_tag_refs(api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = unique("refs")
    shas = git_server.make_repo(f"github/frank/{repo}", {"a.txt": "main"},
                                branches={"feature/x": {"a.txt": "feature"}},
                                tags={"v1.0": "feature/x"})
    branch = api.start_and_wait(f"{repo_url}/frank/{repo}/tree/feature/x")
    assert branch["status"] == "completed", api.logs(branch["name"])
    assert branch["name"] == f"frank-{repo}-feature-x"
    assert branch["display-name"] == f"frank/{repo}/tree/feature/x"
    assert branch["commit"] == shas["feature/x"]
    tag = api.start_and_wait(f"{repo_url}/frank/{repo}/tree/v1.0")
    assert tag["status"] == "completed", api.logs(tag["name"])
    assert tag["name"] == f"frank-{repo}-v1.0"
    assert tag["commit"] == shas["feature/x"]
    assert run_in_image(tag["image-name"], "cat /home/jovyan/a.txt") == "feature"


def test_second_start_of_built_commit_is_a_cache_hit(api: ApiClient, git_server: GitServer,
                                                     repo_url: str) -> None:
    repo = unique("cache")
    git_server.make_repo(f"github/gina/{repo}", {"requirements.txt": f"{TEST_PACKAGE}\n",
                                                  "code.py": "v = 1\n"})
    first = api.start_and_wait(f"{repo_url}/gina/{repo}")
    assert first["status"] == "completed" and first["cached"] is False
    # The API answers it: completed in the start's own answer, and no task was sent.
    response = api.start(f"{repo_url}/gina/{repo}")
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["status"] == "completed", api.logs(second["name"])
    assert second["cached"] is True
    assert second["image-name"] == first["image-name"]
    assert second["commit"] == first["commit"] and second["phases"] == {}
    stored = build_store.get_build(second["name"])
    assert stored["build_id"] == second["build-id"] != first["build-id"]
    assert stored["enqueued"] is False and stored["workers"] == []
    assert second["built-by"] == first["build-id"]
    assert (f"{first['image-name']} is already built (build {first['build-id']})"
            in api.logs(second["name"]))
    # A hit answered from that hit still names the build that made the image.
    again = api.start(f"{repo_url}/gina/{repo}").json()
    assert again["cached"] is True and again["build-id"] != second["build-id"]
    assert again["built-by"] == first["build-id"]
    assert (f"{first['image-name']} is already built (build {first['build-id']})"
            in api.logs(again["name"]))
    # A code-only change rebuilds without reinstalling the dependencies.
    git_server.push_commit(f"github/gina/{repo}", {"code.py": "v = 2\n"})
    third = api.start_and_wait(f"{repo_url}/gina/{repo}")
    assert third["status"] == "completed" and third["cached"] is False
    log = api.logs(third["name"])
    assert step_was_cached(log, "uv pip install"), log


def step_was_cached(log: str, command: str) -> bool:
    """True when BuildKit reused the layer of the RUN step running ``command``."""
    step = next(line.split()[0] for line in log.splitlines()
                if line.startswith("#") and " RUN " in line and command in line)
    return f"{step} CACHED" in log.splitlines()


def failing(api: ApiClient, url: str) -> tuple[dict, str]:
    record = api.start_and_wait(url)
    assert record["status"] == "failed", record
    return record, api.logs(record["name"])


def assert_names_no_image(api: ApiClient, record: dict) -> None:
    """``record``, a build that ended before its push, names no image, in its answer and
    its history: only the one it planned, which is not in the registry."""
    planned = record.get("planned-image")
    assert record["image-name"] is None and planned, record
    assert planned.rpartition(":")[2].startswith(f"{record['commit']}-"), record
    assert not in_registry(planned)
    [attempt] = api.request("GET", f"/builds/{record['name']}/history").json()
    assert (attempt["image-name"], attempt["planned-image"]) == (None, planned), attempt


def test_failures_end_failed_with_clear_errors(api: ApiClient, git_server: GitServer,
                                               repo_url: str) -> None:
    missing, log = failing(api, f"{repo_url}/nobody/{unique('missing')}")
    assert "does not exist or is not public" in missing["error"]
    assert missing["error"] in log
    # It failed before its fetch named an image: it has none, not even a planned one.
    assert missing["image-name"] is None and "planned-image" not in missing, missing

    repo = unique("noref")
    git_server.make_repo(f"github/hank/{repo}", {"a": "b"})
    noref, _ = failing(api, f"{repo_url}/hank/{repo}/tree/no-such-branch")
    assert "No branch or tag named 'no-such-branch'" in noref["error"]

    repo = unique("badreq")
    git_server.make_repo(f"github/hank/{repo}", {"requirements.txt": "numpy==99\n"})
    badreq, log = failing(api, f"{repo_url}/hank/{repo}")
    assert badreq["error"] == (
        "uv could not install the Python packages: No solution found when resolving "
        "dependencies: Because numpy was not found in the package registry and you require "
        "numpy==99, we can conclude that your requirements are unsatisfiable.")
    assert "numpy==99" in log

    repo = unique("runfail")
    git_server.make_repo(f"github/hank/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo about to fail && exit 1\n"})
    runfail, log = failing(api, f"{repo_url}/hank/{repo}")
    assert "failed with exit code 1" in runfail["error"]
    assert "about to fail" in log
    assert_names_no_image(api, runfail)

    repo = unique("badyml")
    git_server.make_repo(f"github/hank/{repo}", {".binder.yml": "limits:\n  memory: lots\n"})
    badyml, _ = failing(api, f"{repo_url}/hank/{repo}")
    assert "limits.memory" in badyml["error"]


def test_environment_yml_repo_from_the_farms_channel_and_pip(
        api: ApiClient, git_server: GitServer, repo_url: str, conda_channel: Served) -> None:
    repo = unique("conda")
    # The file's own channel (a closed loopback port) is replaced by the farm's.
    own = "http://127.0.0.1:9/channel"
    git_server.make_repo(f"github/ivy/{repo}", {
        "environment.yml": f"channels:\n  - {own}\ndependencies:\n  - hello-conda\n"
                           f"  - pip:\n    - {TEST_PACKAGE}\n",
    })
    record = api.start_and_wait(f"{repo_url}/ivy/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["config"] == "environment.yml"
    output = run_in_image(record["image-name"],
                          "hello-conda; python -c 'import binder_test_pkg as p; print(p.GREETING)'")
    assert output.splitlines() == ["hello from conda", "hello from the local index"]
    log = api.logs(record["name"])
    assert "verified: the image serves on port 8888" in log
    assert (f"environment.yml names its own package sources ({own}); this farm uses its "
            f"configured sources instead: {conda_channel.url}.") in log


def test_config_order_setting_and_host_affinity(farm: Farm, api: ApiClient,
                                                git_server: GitServer, repo_url: str) -> None:
    """A worker configured with Dockerfile first builds the Dockerfile; with two
    workers consuming the shared queue, every build stays on one host."""
    repo = unique("order")
    git_server.make_repo(f"github/jo/{repo}", {
        "requirements.txt": f"{TEST_PACKAGE}\n",
        "Dockerfile": f"FROM {BASE_IMAGE}\nUSER root\nRUN echo dockerfile > /marker\n"
                      "USER ${NB_USER}\n",
    })
    conda = unique("order-conda")
    git_server.make_repo(f"github/jo/{conda}", {"requirements.txt": f"{TEST_PACKAGE}\n",
                                                 "environment.yml": "dependencies: []\n"})
    farm.stop_workers("test-a")
    farm.start_worker("test-order", BINDER_CONFIG_ORDER="repo2docker")
    try:
        record = api.start_and_wait(f"{repo_url}/jo/{repo}")
        assert record["status"] == "completed", (record, api.logs(record["name"]))
        assert record["config"] == "Dockerfile"
        assert record["workers"] == ["test-order"]
        assert "ignoring requirements.txt: the environment comes from Dockerfile" in \
            api.logs(record["name"])
        # repo2docker's precedence: environment.yml over requirements.txt.
        record = api.start_and_wait(f"{repo_url}/jo/{conda}")
        assert record["status"] == "completed", (record, api.logs(record["name"]))
        assert record["config"] == "environment.yml"
        # Now two workers share the queue: each build runs wholly on one host.
        farm.start_worker("test-a")
        names = []
        for index in range(4):
            name = unique(f"affinity{index}")
            git_server.make_repo(f"github/jo/{name}", {"f.txt": str(index)})
            response = api.start(f"{repo_url}/jo/{name}")
            assert response.status_code == 200, response.text
            names.append(response.json()["name"])
        for name in names:
            done = api.wait(name)
            assert done["status"] == "completed", api.logs(name)
            hosts = {phase["worker"] for phase in done["phases"].values()}
            assert len(hosts) == 1 and hosts <= {"test-a", "test-order"}, done["phases"]
    finally:
        farm.stop_workers("test-order")
        if not any(p.name == "worker-test-a" and p.alive() for p in farm.processes):
            farm.start_worker("test-a")  # the farm's own worker, for the tests after
