"""Two Docker hosts on one machine: placement, the base image, layers through the registry,
draining.

Host A is the shared engine (unix socket); host B is a second ``dockerd``
the module starts empty, reached only over TCP with mutual TLS on loopback
(certificates made here with openssl). One worker per host, concurrency 1,
in a farm of their own (database, broker prefix, image prefix).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from common.config import get_config
from tests.integration.conftest import API_KEY, DATA_DIR, RUN_ID, TEST_PACKAGE, unique
from tests.support.docker_engine import DockerEngine
from tests.support.farm import BIN, ApiClient, Farm, Process, free_port
from tests.support.git_server import GitServer
from tests.support.processes import wait_until
from workers.registry import manifest_exists

HOST_A, HOST_B = "host-a", "host-b"
READ_KEY = f"read-key-{RUN_ID}"


def make_certificates(root: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    root.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca-key.pem", "-out", "ca.pem")
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        (root / f"{name}.ext").write_text(
            f"extendedKeyUsage={usage}\n" + ("subjectAltName=IP:127.0.0.1\n"
                                             if name == "server" else ""))
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return {name: root / f"{name}.pem" for name in
            ("ca", "server", "server-key", "client", "client-key")}


@dataclass
class TwoHosts:
    farm: Farm
    api: ApiClient
    engine_b: DockerEngine
    workers: dict[str, Process]
    base_missing_on_b: bool

    def cli(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        env = {**os.environ, **self.farm.env, "BINDER_URL": self.api.url,
               "BINDER_API_KEY": API_KEY}
        return subprocess.Popen([str(BIN / "binder-build"), *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


@pytest.fixture(scope="module")
def two_hosts(farm_env: dict[str, str], services: None) -> Iterator[TwoHosts]:
    root = DATA_DIR / "hosts"
    certs = make_certificates(root / "tls")
    port = free_port()
    engine_b = DockerEngine(root / "engine-b", "hosts-b", extra_args=(
        "--host", f"tcp://127.0.0.1:{port}", "--tlsverify", f"--tlscacert={certs['ca']}",
        f"--tlscert={certs['server']}", f"--tlskey={certs['server-key']}")).start()
    farm = None
    try:
        base = get_config().base_image_name
        client = engine_b.client()
        try:
            client.images.get(base)
            missing = False
        except docker.errors.ImageNotFound:
            missing = True
        env = {**farm_env, "BINDER_MONGO_DB": f"binder_test_{RUN_ID}_hosts",
               "BINDER_BROKER_PREFIX": f"test-{RUN_ID}-hosts:",
               "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-hosts-", "BINDER_VERIFY": "false",
               "BINDER_API_KEYS": f"reader:read:{READ_KEY}"}
        farm = Farm(env, DATA_DIR / "logs-hosts")
        _, url = farm.start_api()
        workers = {
            HOST_A: farm.start(f"worker-{HOST_A}", [
                "worker", "--host-id", HOST_A, "--docker-host", "unix:///var/run/docker.sock",
                "--concurrency", "1"], {"BINDER_DATA_DIR": str(root / "data-a")}),
            HOST_B: farm.start(f"worker-{HOST_B}", [
                "worker", "--host-id", HOST_B, "--docker-host", f"tcp://127.0.0.1:{port}",
                "--concurrency", "1"], {
                    "BINDER_DATA_DIR": str(root / "data-b"),
                    "BINDER_DOCKER_TLS_CA": str(certs["ca"]),
                    "BINDER_DOCKER_TLS_CERT": str(certs["client"]),
                    "BINDER_DOCKER_TLS_KEY": str(certs["client-key"])}),
        }
        for host, process in workers.items():
            farm.wait_worker(host, process, timeout=600)  # B pulls the base image first
        api = ApiClient(url, API_KEY)
        assert wait_until(lambda: {h["host"] for h in api.request("GET", "/hosts/").json()
                                   if h["state"] == "up"} == {HOST_A, HOST_B}, 30)
        yield TwoHosts(farm, api, engine_b, workers, missing)
    finally:
        if farm is not None:
            farm.stop()
            from common.db import get_client

            get_client().drop_database(f"binder_test_{RUN_ID}_hosts")
        engine_b.stop()


def requirements_repo(git_server: GitServer, owner: str) -> tuple[str, str]:
    """A repository whose dependency step installs the test package; (path, URL)."""
    repo = unique(owner)
    path = f"github/{owner}/{repo}"
    git_server.make_repo(path, {"requirements.txt": f"{TEST_PACKAGE}\n",
                                "app.py": "print('one')\n"})
    return path, f"{git_server.url}/{path}"


def start(api: ApiClient, url: str) -> str:
    response = api.start(url)
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


def hosts_of(record: dict[str, Any]) -> set[str]:
    """Every host a phase of this attempt ran on."""
    return {phase.get("worker") for phase in record["phases"].values()}


def test_builds_spread_over_both_hosts_each_on_one_and_b_pulls_the_base_image(
        two_hosts: TwoHosts, git_server: GitServer) -> None:
    api = two_hosts.api
    assert two_hosts.base_missing_on_b
    assert two_hosts.engine_b.client().images.get(get_config().base_image_name)
    assert "pulling it from the registry" in two_hosts.workers[HOST_B].log_tail(100_000)
    described = {h["host"]: h for h in api.request("GET", "/hosts/").json()}
    for host in (HOST_A, HOST_B):
        assert described[host]["engine-version"], described
        assert described[host]["concurrency"] == 1 and described[host]["free-disk-mb"] > 0
    assert described[HOST_B]["docker-host"].startswith("tcp://127.0.0.1:")

    repos = [requirements_repo(git_server, owner) for owner in ("ann", "bob", "cy")]
    first = [start(api, url) for _, url in repos]
    records = {name: api.wait(name, 600) for name in first}
    # Round two: a code-only change to each; the first goes to the host that built it last.
    for path, _ in repos:
        git_server.push_commit(path, {"app.py": "print('two')\n"})
    second = [start(api, url) for _, url in repos]
    records.update({name: api.wait(name, 600) for name in second})
    history = {name: api.request("GET", f"/builds/{name}/history").json() for name in first}
    attempts = [attempt for runs in history.values() for attempt in runs]
    assert len(attempts) == 6
    used = set()
    for attempt in attempts:
        assert attempt["status"] == "completed", attempt
        assert not attempt["cached"], attempt
        on = hosts_of(attempt)
        assert len(on) == 1, attempt  # every phase of a build on one host
        used |= on
        assert manifest_exists(get_config(), attempt["image-name"]), attempt["image-name"]
    assert used == {HOST_A, HOST_B}
    round_one = {name: hosts_of(runs[-1]) for name, runs in history.items()}
    round_two = {name: hosts_of(runs[0]) for name, runs in history.items()}
    # Both hosts were free when the first rebuild started: it went where its layers are.
    assert round_two[first[0]] == round_one[first[0]]
    log = api.logs(first[0])
    assert "reusing layers from" in log and "CACHED" in log, log[-3000:]


def test_a_drained_host_finishes_its_build_and_the_burst_goes_to_the_other(
        two_hosts: TwoHosts, git_server: GitServer) -> None:
    api = two_hosts.api
    assert wait_until(lambda: all(not h["running"] for h in
                                  api.request("GET", "/hosts/").json()), 120)
    # A repository built on A, to be rebuilt on B during the burst.
    layered_path, layered_url = requirements_repo(git_server, "dee")
    layered = start(api, layered_url)
    first_record = api.wait(layered, 600)
    assert first_record["status"] == "completed", first_record
    assert hosts_of(first_record) == {HOST_A}  # both idle: A comes first

    slow = unique("slow")
    git_server.make_repo(f"github/eve/{slow}", {"Dockerfile": (
        # The step names the repository: a step built before (an earlier run on this
        # engine) would be cached and end before the drain could wait for it.
        f"FROM {get_config().base_image_name}\nRUN echo slow step {slow} && sleep 20\n")})
    running = start(api, f"{git_server.url}/github/eve/{slow}")
    record = api.wait_phase(running, "building", 300)
    assert hosts_of(record) == {HOST_A}, record

    refused = api.request("POST", f"/hosts/{HOST_A}/drain", auth=False)
    assert refused.json()["type"] == "unauthorized", refused.text
    reader = api.request("POST", f"/hosts/{HOST_A}/drain", headers={"Authorization": READ_KEY})
    assert reader.json()["type"] == "insufficientScope", reader.text
    drain = two_hosts.cli("worker", "drain", HOST_A)  # waits for the running build
    assert wait_until(lambda: next(h for h in api.request("GET", "/hosts/").json()
                                   if h["host"] == HOST_A)["state"] == "draining", 30)
    listed, _ = two_hosts.cli("worker", "hosts").communicate(timeout=60)
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.splitlines()[1:]}
    assert listed.startswith("HOST\tSTATE\tBUILDS\tRUNNING\t"), listed
    assert rows[HOST_A][1:4] == ["draining", "1/1", running], listed
    assert rows[HOST_B][1:4] == ["up", "0/1", ""], listed

    git_server.push_commit(layered_path, {"app.py": "print('rebuilt')\n"})
    burst = [start(api, layered_url)]
    for owner in ("fay", "gus"):
        repo = unique(owner)
        git_server.make_repo(f"github/{owner}/{repo}", {"Dockerfile": (
            f"FROM {get_config().base_image_name}\nRUN echo {repo} > /tmp/name\n")})
        burst.append(start(api, f"{git_server.url}/github/{owner}/{repo}"))

    assert drain.poll() is None or api.build(running)["status"] != "running"
    finished = api.wait(running, 300)
    assert finished["status"] == "completed" and hosts_of(finished) == {HOST_A}, finished
    output, _ = drain.communicate(timeout=60)
    assert drain.returncode == 0, output
    assert running in output  # it said what it waited for
    for name in burst:
        record = api.wait(name, 600)
        assert record["status"] == "completed", record
        assert hosts_of(record) == {HOST_B}, record  # nothing new started on A
    log = api.logs(burst[0])
    assert f"reusing layers from {first_record['image-name']}" in log, log[-3000:]
    assert "CACHED" in log, log[-3000:]

    undrain = two_hosts.cli("worker", "undrain", HOST_A)
    output, _ = undrain.communicate(timeout=60)
    assert undrain.returncode == 0, output
    state = next(h for h in api.request("GET", "/hosts/").json() if h["host"] == HOST_A)
    assert state["state"] == "up" and not state["draining"], state
