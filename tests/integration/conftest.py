"""Integration fixtures: the real Docker engine, registry, Redis and Mongo wire server.

Each service is reused when it already answers (``.ci/run`` and ``make up``
start them) and started otherwise, once per session. A test run gets its
own MongoDB database, Redis database and image prefix, and a Git server,
package index and farm processes (API, workers) of its own on loopback.

The services require credentials: the test run reads them from the file
of the farm that started the services, ``BINDER_CREDENTIALS_FILE`` when set
(e.g. ``/tmp/ci-base/.binder-data/credentials.json``), else this checkout's
``.binder-data/credentials.json`` (what ``make up`` and ``.ci/run`` make).
Services elsewhere: ``REDIS_URL`` (its database number is replaced),
``MONGO_URL`` and ``BINDER_REGISTRY`` from the environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import docker
import docker.errors
import pymongo
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

RUN_ID = uuid.uuid4().hex[:8]
DATA_DIR = Path(tempfile.mkdtemp(prefix=f"binder-test-{RUN_ID}-"))
API_KEY = f"test-key-{RUN_ID}"
CHECKOUT = Path(__file__).resolve().parents[2]
CREDENTIALS_FILE = os.environ.get("BINDER_CREDENTIALS_FILE",
                                  str(CHECKOUT / ".binder-data" / "credentials.json"))
SERVICES_REDIS = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
#: The token the farm holds for the Git server's private repositories.
GIT_TOKEN = f"git-token-{RUN_ID}-private"

# The test process and every farm process it starts share these settings;
# they are set before anything reads the configuration.
TEST_ENV = {
    "BINDER_API_KEY": API_KEY,
    "BINDER_DATA_DIR": str(DATA_DIR),
    "BINDER_MONGO_DB": f"binder_test_{RUN_ID}",
    # A Redis database of its own, so concurrent test runs never take each
    # other's tasks (queue names are the same in every farm).
    "REDIS_URL": urlunsplit(SERVICES_REDIS._replace(path=f"/{1 + int(RUN_ID, 16) % 15}")),
    "BINDER_CREDENTIALS_FILE": CREDENTIALS_FILE,
    "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-",
    "BINDER_BROKER_PREFIX": f"test-{RUN_ID}:",
    "BINDER_BUILD_NETWORK": "host",
    "BINDER_HEARTBEAT_INTERVAL": "1",
    "BINDER_HEARTBEAT_STALE": "10",
    "BINDER_REAPER_INTERVAL": "2",
    "BINDER_VERIFY_TIMEOUT": "600",  # a bound: a busy host starts Jupyter slowly
    # A bound: a busy host resolves slowly, and tests check the API's cache answer.
    "BINDER_CACHE_RESOLVE_TIMEOUT": "20",
    # Test runs start many farms on a small machine: two API processes each.
    "BINDER_API_WORKERS": "2",
    "BINDER_MIN_FREE_DISK_MB": "100",
    # Other farms build on the shared engine: its build cgroup is not ours to
    # limit (tests of the limit run an engine of their own).
    "BINDER_LIMIT_BUILD_CGROUP": "false",
    # The shared Mongo wire server serves every test run on the machine and,
    # under load, sometimes takes several seconds to answer; a tighter bound
    # makes a busy store look down. Tests of the bound on a down or hung store
    # set it back (STORE_BOUND).
    "BINDER_MONGO_TIMEOUT_MS": "15000",
}
os.environ.update(TEST_ENV)

from common.config import SETTINGS, get_config, set_config  # noqa: E402
from tests.support.browser import chromium  # noqa: E402
from tests.support.conda_channel import make_channel, script_package  # noqa: E402
from tests.support.docker_engine import DockerEngine  # noqa: E402
from tests.support.farm import ApiClient, Farm  # noqa: E402
from tests.support.git_server import GitServer  # noqa: E402
from tests.support.provider_servers import ProviderServers  # noqa: E402
from tests.support.pypi_index import Wheel, make_index, make_wheel, wheels_in  # noqa: E402
from tests.support.static_http import serve_directory  # noqa: E402
from workers.docker_engine import docker_client  # noqa: E402
from workers.launcher import ensure_services, stop_services  # noqa: E402
from workers.registry import auth_config  # noqa: E402

TEST_PACKAGE = "binder-test-pkg"
#: The farm's default bound on one MongoDB operation, for the farms of tests of
#: that bound (their store is their own, or not there at all).
STORE_BOUND = {setting.env: str(setting.default) for setting in SETTINGS
               if setting.env == "BINDER_MONGO_TIMEOUT_MS"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def git_server() -> Iterator[GitServer]:
    """GitHub at ``/github``, GitLab at ``/gitlab``, gists at ``/gist``, any Git elsewhere.

    GitHub owners ``private`` and ``locked`` are private: the first needs
    ``GIT_TOKEN`` (which the farm holds), the second a token nobody has.
    """
    server = GitServer(DATA_DIR / "git").start()
    server.tokens.update({"github/private/": GIT_TOKEN, "github/locked/": "nobody-has-it"})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def provider_servers() -> Iterator[ProviderServers]:
    """Loopback Zenodo, Figshare, Dataverse and DOI resolver (``tests/support``)."""
    servers = ProviderServers.start()
    yield servers
    servers.stop()


def package_wheel(version: str) -> Wheel:
    return make_wheel(TEST_PACKAGE, version, {
        "binder_test_pkg.py": f"GREETING = 'hello from the local index'\nVERSION = '{version}'\n"})


@dataclass
class Served:
    """A directory served on loopback, its URL and its access log."""

    root: Path
    url: str
    access_log: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def package_index() -> Iterator[Served]:
    """The farm's index: the test package (1.0 and 2.0) and the base image's locked wheels
    (Jupyter, setuptools ...), as a mirror of PyPI would serve them."""
    from workers.base_image import download_wheels

    wheelhouse = DATA_DIR / "wheelhouse"
    download_wheels(get_config(), wheelhouse)
    root = make_index(DATA_DIR / "index", [package_wheel("1.0"), package_wheel("2.0"),
                                           *wheels_in(wheelhouse)])
    log: list[str] = []
    with serve_directory(root, access_log=log) as url:
        yield Served(root, f"{url}/simple/", log)


@pytest.fixture(scope="session")
def conda_channel() -> Iterator[Served]:
    """The farm's conda channel (BINDER_CONDA_CHANNELS): holds ``hello-conda``; tests
    add the packages they need."""
    root = make_channel(DATA_DIR / "channel", [script_package("hello-conda",
                                                               "hello from conda")])
    log: list[str] = []
    with serve_directory(root, access_log=log) as url:
        yield Served(root, url, log)


@pytest.fixture(scope="session")
def cran() -> Iterator[Served]:
    """The farm's CRAN-like repository (BINDER_CRAN_URL, dated snapshots); tests fill it."""
    root = DATA_DIR / "cran"
    root.mkdir(parents=True)
    log: list[str] = []
    with serve_directory(root, access_log=log) as url:
        yield Served(root, url, log)


@pytest.fixture(scope="session")
def farm_env(git_server: GitServer, package_index: Served, conda_channel: Served,
             cran: Served, provider_servers: ProviderServers) -> dict[str, str]:
    env = {
        **TEST_ENV,
        "BINDER_GITHUB_URL": f"{git_server.url}/github",
        "BINDER_GITLAB_URL": f"{git_server.url}/gitlab",
        "BINDER_GIST_URL": f"{git_server.url}/gist",
        **provider_servers.settings(),
        "BINDER_ALLOWED_SOURCE_HOSTS": ",".join([git_server.host, *provider_servers.hosts]),
        "BINDER_SOURCE_TOKENS": f"{git_server.host}={GIT_TOKEN}",
        "BINDER_PIP_INDEX_URL": package_index.url,
        "BINDER_CONDA_CHANNELS": conda_channel.url,
        "BINDER_CRAN_URL": f"{cran.url}/{{date}}",
    }
    os.environ.update(env)
    set_config(None)  # read again, with the services' credentials
    return env


@pytest.fixture(scope="session")
def services(farm_env: dict[str, str]) -> Iterator[None]:
    """Every component answering, and the base image in the registry."""
    from workers.base_image import ensure_base_image

    started = ensure_services(get_config())
    set_config(None)  # the services' credentials, if starting them made some
    ensure_base_image(get_config(), say=lambda line: None)
    yield
    remove_run_images()
    stop_services(started)


def remove_run_images() -> None:
    """Remove the images this run made in the shared engine (their names start with
    the run's image prefix), with the layers only they used.

    The engine outlives the run, and a machine that runs the suite again and again
    would otherwise gain some sixty images a run until its disk fills and pulls fail.
    """
    config = get_config()
    mine = f"{config.registry}/test-{RUN_ID}"
    client = docker_client(config, timeout=600)
    try:
        for image in client.images.list():
            # Tags, and the digests an image pulled by digest is known by, which keep
            # it as much as a tag does.
            for reference in image.tags + image.attrs.get("RepoDigests", []):
                if reference.startswith(mine):
                    # An image a leftover container still uses stays; it is not worth
                    # failing the run's teardown for.
                    with contextlib.suppress(docker.errors.APIError):
                        client.images.remove(reference)
    finally:
        client.close()


@pytest.fixture(scope="session")
def farm(request: pytest.FixtureRequest, farm_env: dict[str, str],
         services: None) -> Iterator[Farm]:
    farm = Farm(farm_env, DATA_DIR / "logs")
    yield farm
    farm.stop()
    from common.db import get_client

    get_client().drop_database(farm_env["BINDER_MONGO_DB"])
    if request.session.testsfailed:
        print(f"\nfarm logs kept in {DATA_DIR / 'logs'}")
    else:
        shutil.rmtree(DATA_DIR, ignore_errors=True)


def prepare(database: str) -> None:
    """The farm's collections before its processes start, as ``up`` makes them: several
    processes creating them at once can hang the embedded store."""
    from common.db import PREPARE_TIMEOUT_S, create_collections, get_client

    with pymongo.timeout(PREPARE_TIMEOUT_S):
        create_collections(get_client()[database])


@pytest.fixture(scope="session")
def api(farm: Farm) -> ApiClient:
    """The API under gunicorn plus one worker (host ``test-a``)."""
    prepare(get_config().mongo_db)
    _, url = farm.start_api()
    farm.start_worker("test-a")
    return ApiClient(url, API_KEY)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium for tests of the farm's pages (see ``tests.support.browser``)."""
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


@dataclass
class SecondHost:
    """A farm of its own on a Docker engine of its own.

    Its engine's build cgroup is limited to ``SECOND_HOST_MEMORY`` and
    ``SECOND_HOST_PIDS`` processes and threads, and its
    base image (``base_image``, a copy of the shared one) is its own: tests
    may change either without touching what other farms share.
    """

    engine: DockerEngine
    farm: Farm
    api: ApiClient
    base_image: str


SECOND_HOST_MEMORY = "256M"
SECOND_HOST_PIDS = 512


@pytest.fixture(scope="session")
def second_host(farm_env: dict[str, str], services: None) -> Iterator[SecondHost]:
    config = get_config()
    base = f"{config.registry}/test-{RUN_ID}-base:latest"
    shared = docker_client(config, timeout=600)
    shared.images.get(config.base_image_name).tag(base)
    for event in shared.api.push(base, stream=True, decode=True,
                                 auth_config=auth_config(config)):
        assert "error" not in event, event
    engine = DockerEngine(DATA_DIR / "engine-b", "b").start()
    farm = None
    try:
        engine.pull(config.base_image_name, auth_config(config))
        env = {**farm_env, "DOCKER_HOST": engine.host, "BINDER_DATA_DIR": str(DATA_DIR / "farm-b"),
               "BINDER_MONGO_DB": f"binder_test_{RUN_ID}_b",
               "BINDER_BROKER_PREFIX": f"test-{RUN_ID}-b:",
               "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-b-", "BINDER_BASE_IMAGE": base,
               "BINDER_BUILD_MEMORY": SECOND_HOST_MEMORY, "BINDER_LIMIT_BUILD_CGROUP": "true",
               "BINDER_BUILD_PIDS": str(SECOND_HOST_PIDS),
               "BINDER_VERIFY": "false"}
        farm = Farm(env, DATA_DIR / "logs-b")
        prepare(env["BINDER_MONGO_DB"])
        _, url = farm.start_api()
        farm.start_worker("engine-b")
        yield SecondHost(engine, farm, ApiClient(url, API_KEY), base)
    finally:
        if farm is not None:
            farm.stop()
        engine.stop()
        shared.images.remove(base, force=True)


@pytest.fixture
def repo_url(git_server: GitServer) -> str:
    """Base URL GitHub-style repositories are served under."""
    return f"{git_server.url}/github"


def unique(name: str) -> str:
    """A repository name unique to this test run."""
    return f"{name}-{uuid.uuid4().hex[:6]}"
