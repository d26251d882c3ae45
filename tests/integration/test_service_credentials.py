"""The services the farm starts require credentials, and builds never have them.

``binder-build services`` (what ``make up`` and CI run) is started here on
ports and a data dir of its own, so these tests never touch the shared
services' credentials; the last test looks at the services this test run
uses. A build that tries to write to them is a case of ``test_hostile.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pymongo
import pymongo.errors
import pytest
import redis
import requests

from common.config import Config, get_config, load_config
from common.db import mongo_url
from common.service_credentials import (
    mongo_address,
    read_credentials,
    redis_address,
    with_service_credentials,
)
from tests.support.farm import BIN, free_port

PROBE = Path(__file__).resolve().parents[1] / "support" / "service_probe.py"
TINY_PREFIX = "test-farm-credentials"


@dataclass
class OwnServices:
    """Services started by ``binder-build services`` for this module only."""

    env: dict[str, str]
    data_dir: Path
    pids: list[int] = field(default_factory=list)
    output: str = ""

    @property
    def config(self) -> Config:
        return with_service_credentials(load_config(environ=self.env))

    def start(self) -> str:
        result = subprocess.run([str(BIN / "binder-build"), "services", "--no-base-image"],
                                env={**os.environ, **self.env}, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        self.pids += [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", result.stdout)]
        self.output = result.stdout
        return result.stdout

    def stop(self) -> str:
        """``binder-build services --stop``: its output, once every started process is gone."""
        result = subprocess.run([str(BIN / "binder-build"), "services", "--stop"],
                                env={**os.environ, **self.env}, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        deadline = time.monotonic() + 10
        while [pid for pid in self.pids if _runs(pid)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in self.pids if _runs(pid)] == [], result.stdout
        self.pids.clear()
        return result.stdout


def _runs(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def own_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServices]:
    data_dir = tmp_path_factory.mktemp("own-services")
    env = {
        "BINDER_DATA_DIR": str(data_dir),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MONGO_URL": f"mongodb://127.0.0.1:{free_port()}",
        "BINDER_REGISTRY": f"127.0.0.1:{free_port()}",
        # not the test run's: these services get credentials of their own
        "BINDER_CREDENTIALS_FILE": "", "BINDER_REGISTRY_USERNAME": "",
        "BINDER_REGISTRY_PASSWORD": "",
    }
    services = OwnServices(env, data_dir)
    try:
        output = services.start()
        assert {"redis", "mongo", "registry"} <= set(re.findall(r"started (\w+)", output))
        yield services
    finally:
        services.stop()


def redis_cli_ping(url: str) -> str:
    address = redis_address(url)
    host, _, port = address.rpartition(":")
    return subprocess.run(["redis-cli", "-h", host, "-p", port, "ping"], capture_output=True,
                          text=True, timeout=10).stdout.strip()


def anonymous_mongo_codes(url: str) -> tuple[dict[str, object], int | None, int | None]:
    """(ping reply, code of a find, code of an insert) without credentials."""
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        f"mongodb://{mongo_address(url)}", serverSelectionTimeoutMS=3000)
    codes: list[int | None] = []
    try:
        ping = client.admin.command("ping")
        for operation in (lambda: client.binder.builds.find_one(),
                          lambda: client.binder.builds.insert_one({"name": "anonymous"})):
            try:
                operation()
                codes.append(None)
            except pymongo.errors.OperationFailure as exc:
                codes.append(exc.code)
    finally:
        client.close()
    return ping, codes[0], codes[1]


def assert_refuses_anonymous(config: Config) -> None:
    assert "NOAUTH" in redis_cli_ping(config.redis_url)
    ping, find_code, insert_code = anonymous_mongo_codes(mongo_url(config))
    assert ping["ok"] == 1.0  # the handshake answers before login...
    assert (find_code, insert_code) == (13, 13)  # ...nothing else does
    catalog = requests.get(f"{config.registry_url}/v2/_catalog", timeout=10)
    assert catalog.status_code == 401


def test_started_services_refuse_anonymous_clients_and_take_the_farms(
        own_services: OwnServices) -> None:
    config = own_services.config
    assert_refuses_anonymous(config)

    assert redis.Redis.from_url(config.redis_url).ping() is True
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_url(config))
    try:
        client.binder.probe.insert_one({"written": "by the farm"})
        assert client.binder.probe.count_documents({}) == 1
        with pytest.raises(pymongo.errors.OperationFailure) as refused:
            client.admin.command("createUser", "intruder", pwd="x", roles=["root"])
        assert refused.value.code == 13  # the farm's user cannot make users
    finally:
        client.close()
    catalog = requests.get(f"{config.registry_url}/v2/_catalog", timeout=10,
                           auth=(config.registry_username, config.registry_password))
    assert catalog.status_code == 200


def test_credentials_stay_private(own_services: OwnServices) -> None:
    data_dir = own_services.data_dir
    for name in ("credentials.json", "redis.conf", "registry.htpasswd", "registry.yml"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    credentials = read_credentials(data_dir / "credentials.json")
    assert credentials is not None
    secrets = [credentials.redis_password, credentials.mongo_password,
               credentials.registry_password]
    htpasswd = (data_dir / "registry.htpasswd").read_text()
    assert not any(secret in htpasswd for secret in secrets)
    # A generated password is hashed at bcrypt's least cost (the registry checks it
    # on every request); it is 256 random bits.
    assert htpasswd.split(":", 1)[1].startswith("$2b$04$")
    for entry in Path("/proc").iterdir():  # no password on any command line
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert not any(secret in cmdline for secret in secrets), cmdline


def _tiny_context(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n"),
                           ("a.txt", text.encode()), ("b.txt", b"b\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_docker_pushes_pulls_and_imports_cache_with_the_registry_credentials(
        own_services: OwnServices, tmp_path: Path) -> None:
    from workers.registry import auth_config, docker_cli_config

    config = own_services.config
    image = f"{config.registry}/{TINY_PREFIX}-{uuid.uuid4().hex[:6]}:1"
    repository, tag = image.rsplit(":", 1)
    context = tmp_path / "context"
    with tarfile.open(fileobj=io.BytesIO(_tiny_context(uuid.uuid4().hex))) as tar:
        tar.extractall(context, filter="data")
    cli_env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(tmp_path / "empty")}
    built = subprocess.run(["/usr/bin/docker", "build", "-q", "--build-arg",
                            "BUILDKIT_INLINE_CACHE=1", "-t", image, str(context)],
                           env=cli_env, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    client = docker.from_env()
    try:
        events = list(client.api.push(repository, tag=tag, stream=True, decode=True,
                                      auth_config=auth_config(config)))
        assert not [event for event in events if "error" in event], events
        client.images.remove(image)
        with pytest.raises(docker.errors.APIError, match="no basic auth credentials"):
            client.images.pull(repository, tag=tag)
        client.images.pull(repository, tag=tag, auth_config=auth_config(config))
        client.images.remove(image)
        client.api.prune_builds()

        def build_from_cache(docker_config: Path) -> str:
            result = subprocess.run(
                ["/usr/bin/docker", "build", "--progress", "plain", "--cache-from", image,
                 "-t", f"{image}-again", str(context)],
                env={**cli_env, "DOCKER_CONFIG": str(docker_config)}, capture_output=True,
                text=True, timeout=120)
            return result.stdout + result.stderr

        anonymous = build_from_cache(tmp_path / "empty")
        assert "401 Unauthorized" in anonymous
        logged_in = build_from_cache(docker_cli_config(config))
        assert "importing cache manifest" in logged_in and "ERROR" not in logged_in
        assert logged_in.count("CACHED") == 2, logged_in
        cli_config = docker_cli_config(config) / "config.json"
        assert stat.S_IMODE(cli_config.stat().st_mode) == 0o600
    finally:
        for name in (image, f"{image}-again"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(name, force=True)
        client.close()


def test_a_restart_keeps_the_credentials_and_the_mongo_user(own_services: OwnServices) -> None:
    data_dir = own_services.data_dir
    before = (data_dir / "credentials.json").read_text()
    provisioned = (data_dir / "mongo.provisioned").stat().st_mtime_ns
    stopped = own_services.stop()  # every process it started is gone (see there)
    assert stopped.splitlines()[-1] == "stopped registry, mongo, redis", stopped
    assert own_services.stop() == "no service started by binder-build services runs\n"
    output = own_services.start()
    assert {"redis", "mongo", "registry"} <= set(re.findall(r"started (\w+)", output))
    assert (data_dir / "credentials.json").read_text() == before
    assert (data_dir / "mongo.provisioned").stat().st_mtime_ns == provisioned  # not again
    config = own_services.config
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_url(config))
    try:
        assert client.binder.probe.count_documents({}) == 1  # written before the restart
    finally:
        client.close()
    assert_refuses_anonymous(config)


def test_the_services_of_this_test_run_refuse_anonymous_clients(services: None) -> None:
    assert_refuses_anonymous(get_config())
