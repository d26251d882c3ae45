"""The fault matrix: every service the farm needs stops or freezes while builds run.

For each of Redis, the Mongo wire server, the registry and the Docker
engine, stopped (gone, then started again 20 s later) and frozen (SIGSTOP
for 20 s, then SIGCONT), while builds are in a phase: every build ends
``completed`` within ``BINDER_HEARTBEAT_STALE`` + its normal duration + a
minute, none is left running, and each image is pushed once.

"Stopped" kills the service (SIGKILL), except the Mongo wire server, which
gets SIGTERM: it loses what it was told in its last second or two to a
SIGKILL, which a real MongoDB with its journal does not, so a kill would
test the stand-in rather than the farm.

The farm and every service here are this module's own (tests/support/
services.py): nothing other test runs use is stopped or frozen. By default
one case per service and fault kind runs during the build phase; with
``BINDER_FAULT_MATRIX=full`` fetch and push too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo
import pytest
import requests

from common.config import get_config
from tests.integration.conftest import API_KEY, DATA_DIR, STORE_BOUND, unique
from tests.support.farm import ApiClient, Farm, HostWorkers, start_whole_farm
from tests.support.git_server import GitServer
from tests.support.services import DedicatedServices, ServiceProcess
from workers.registry import split_image

FAULT_SECONDS = 20
STALE = 10
BUILDS_PER_CASE = 2
HOSTS = ("fault-a", "fault-b")
FULL = os.environ.get("BINDER_FAULT_MATRIX", "") == "full"
PHASES = ("fetching", "building", "pushing") if FULL else ("building",)
CASES = [(service, kind, phase) for phase in PHASES
         for service in ("redis", "mongo", "registry", "docker")
         for kind in ("stopped", "frozen")]


@dataclass
class FaultFarm:
    services: DedicatedServices
    farm: Farm
    api: ApiClient
    db: pymongo.database.Database[dict[str, Any]]
    workers: HostWorkers
    #: phase -> seconds its builds take without a fault
    normal: dict[str, float] = field(default_factory=dict)

    def status(self, name: str) -> dict[str, Any] | None:
        """The build as the API shows it; ``None`` while the API cannot say (503)."""
        try:
            response = self.api.request("GET", f"/builds/{name}")
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_phase(self, names: list[str], phase: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(names)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                record = self.status(name)
                if record is None:
                    continue
                assert record["status"] == "running", (name, record["status"], record["error"])
                if record["phase"] == phase:
                    waiting.discard(name)
            time.sleep(0.2)
        assert not waiting, f"{waiting} never reached {phase}"

    def wait_ended(self, names: list[str], deadline: float) -> dict[str, dict[str, Any]]:
        ended: dict[str, dict[str, Any]] = {}
        while len(ended) < len(names) and time.monotonic() < deadline:
            for name in names:
                record = self.status(name)
                if record is not None and record["status"] != "running":
                    ended[name] = record
            time.sleep(0.5)
        return ended


@pytest.fixture(scope="module")
def fault_farm(farm_env: dict[str, str], services: None) -> Iterator[FaultFarm]:
    root = DATA_DIR / f"faults-{uuid.uuid4().hex[:6]}"
    dedicated = DedicatedServices(root).start()
    config = get_config()
    registry, repository, tag = split_image(config.base_image_name)
    auth = (config.registry_username, config.registry_password) \
        if config.registry_username else None
    client = dedicated.mongo.client()
    farm = Farm({}, root / "logs")
    try:
        dedicated.seed_base_image(registry, f"{repository}:{tag}", auth)
        farm.env = {**farm_env, **dedicated.env(), "BINDER_MONGO_DB": "faults",
                    "BINDER_IMAGE_PREFIX": "fault-", "BINDER_VERIFY": "false",
                    "BINDER_HEARTBEAT_INTERVAL": "1", "BINDER_HEARTBEAT_STALE": str(STALE),
                    "BINDER_REAPER_INTERVAL": "1", **STORE_BOUND}
        url, workers = start_whole_farm(farm, client["faults"].workers, HOSTS)
        yield FaultFarm(dedicated, farm, ApiClient(url, API_KEY), client["faults"], workers)
    finally:
        farm.stop()
        client.close()
        dedicated.stop()


def dockerfile(phase: str) -> str:
    """A build that spends a while in ``phase`` (fetch is slowed by the git server)."""
    # As the base image's user, writing only to /tmp.
    base = f"FROM {{base}}\nRUN echo {uuid.uuid4().hex} > /tmp/id"
    steps = {"fetching": "", "building": " && sleep 12",
             "pushing": " && head -c 200000000 /dev/urandom > /tmp/big"}
    return f"{base}{steps[phase]}\n"


def start_builds(ff: FaultFarm, git_server: GitServer, repo_url: str, phase: str,
                 label: str) -> list[str]:
    """Start the case's builds at once: a slowed Git server slows each start too (the API
    resolves the ref), and one after the other the first could end before the last began."""
    repos = []
    for index in range(BUILDS_PER_CASE):
        repo = unique(f"{label}{index}")
        text = dockerfile(phase).replace("{base}", ff.services.base_image)
        git_server.make_repo(f"github/fault/{repo}", {"Dockerfile": text})
        if phase == "fetching":
            git_server.delays[repo] = 8.0
        repos.append(repo)

    def start(repo: str) -> str:
        response = ApiClient(ff.api.url, API_KEY).start(f"{repo_url}/fault/{repo}")
        assert response.status_code == 200, response.text
        return str(response.json()["name"])
    with ThreadPoolExecutor(len(repos)) as pool:
        return list(pool.map(start, repos))


def normal_duration(ff: FaultFarm, git_server: GitServer, repo_url: str, phase: str) -> float:
    """Seconds the builds of ``phase``'s kind take without a fault (measured once)."""
    if phase not in ff.normal:
        started = time.monotonic()
        names = start_builds(ff, git_server, repo_url, phase, f"normal-{phase[:5]}")
        ended = ff.wait_ended(names, started + 600)
        assert all(r["status"] == "completed" for r in ended.values()), {
            name: (r["status"], r["error"]) for name, r in ended.items()}
        ff.normal[phase] = time.monotonic() - started
    return ff.normal[phase]


def frozen_state(target: ServiceProcess) -> str:
    """What a failed freeze looks like: the process's state and who listens on its port."""
    try:
        state = Path(f"/proc/{target.pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError as exc:
        state = f"unreadable ({exc})"
    port = getattr(target, "port", None)
    try:
        listening = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        listening = f"unknown ({exc})"
    return f"pid {target.pid} state {state}; listening on {port}: {listening or 'nothing'}"


def inject(ff: FaultFarm, service: str, kind: str, probe: str) -> None:
    """Stop or freeze ``service`` for FAULT_SECONDS; while the store is frozen,
    requests answer 503 within 2.5 s (``probe`` is a build to ask about)."""
    target: ServiceProcess = getattr(ff.services, service)
    if kind == "frozen":
        with target.frozen():
            ends = time.monotonic() + FAULT_SECONDS
            if service == "mongo":
                for _ in range(3):
                    started = time.monotonic()
                    response = ff.api.request("GET", f"/builds/{probe}")
                    assert response.status_code == 503, (response.text, frozen_state(target))
                    assert response.json()["type"] == "noDatabase"
                    assert time.monotonic() - started < 2.5
            time.sleep(max(0.0, ends - time.monotonic()))
        return
    if service == "mongo":
        target.stop()
    else:
        target.kill()
    time.sleep(FAULT_SECONDS)
    target.start()


@pytest.mark.parametrize(("service", "kind", "phase"), CASES,
                         ids=[f"{s}-{k}-{p}" for s, k, p in CASES])
def test_builds_survive_a_service_fault(fault_farm: FaultFarm, git_server: GitServer,
                                        repo_url: str, service: str, kind: str,
                                        phase: str) -> None:
    ff = fault_farm
    ff.workers.ensure()
    normal = normal_duration(ff, git_server, repo_url, phase)
    started = time.monotonic()
    names = start_builds(ff, git_server, repo_url, phase, f"{service[:5]}-{kind[:4]}-")
    ff.wait_phase(names, phase, timeout=120)
    inject(ff, service, kind, probe=names[0])
    bound = STALE + normal + 60
    ended = ff.wait_ended(names, started + bound)
    logs = {name: ff.api.logs(name)[-2000:] for name in names if name in ended}
    assert sorted(ended) == sorted(names), f"still running after {bound:.0f} s: {ended}"
    for name, record in ended.items():
        assert record["status"] == "completed", (record, logs[name])
        _, repository, tag = split_image(record["image-name"])
        assert ff.services.registry.tags(repository) == [tag]
        assert tag.startswith(record["commit"])
        assert ff.services.registry.manifest_puts(repository) == 1, record
    assert ff.db.builds.count_documents({"name": {"$in": names}, "status": "running"}) == 0


def hung_dockerfile(ff: FaultFarm, seconds: int) -> str:
    return f"FROM {ff.services.base_image}\nRUN echo {uuid.uuid4().hex} && sleep {seconds}\n"


def wait_cancelled(ff: FaultFarm, name: str, timeout: float) -> float:
    """Seconds from now until ``name`` is cancelled (fails past ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        record = ff.status(name)
        if record is not None and record["status"] != "running":
            assert record["status"] == "cancelled", record
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{name} not cancelled within {timeout} s: {ff.status(name)}")


def wait_log_end(ff: FaultFarm, name: str, line: str, timeout: float = 5) -> None:
    """Until the log of ``name`` ends with ``line`` (an ended build's last line may come
    just after its status); fails past ``timeout``."""
    deadline = time.monotonic() + timeout
    while (last := ff.api.logs(name).splitlines()[-1:]) != [line]:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}'s log ends with {last}, not {line!r}")
        time.sleep(0.2)


def test_cancel_of_a_build_whose_worker_was_killed_ends_it_within_5s(
        fault_farm: FaultFarm, git_server: GitServer, repo_url: str) -> None:
    ff = fault_farm
    ff.workers.ensure()
    repo = unique("cancel-killed")
    git_server.make_repo(f"github/fault/{repo}", {"Dockerfile": hung_dockerfile(ff, 600)})
    name = ff.api.start(f"{repo_url}/fault/{repo}").json()["name"]
    ff.wait_phase([name], "building", timeout=120)
    record = ff.status(name)
    assert record is not None
    ff.workers[record["worker"]].signal(signal.SIGKILL)  # its whole process group
    started = time.monotonic()
    response = ff.api.request("DELETE", f"/builds/{name}")
    assert response.status_code == 200, response.text
    wait_cancelled(ff, name, timeout=10)
    assert time.monotonic() - started < 5
    # No worker was left to end the log: the farm ends it as a worker would have.
    wait_log_end(ff, name, "== build cancelled: Cancelled by request.")


def test_cancel_of_a_build_its_worker_gave_back_after_a_store_freeze_ends_it_within_5s(
        fault_farm: FaultFarm, git_server: GitServer, repo_url: str) -> None:
    """A worker that waits only 3 s for the store gives its build back when the
    store freezes as its build phase ends; cancelling that build ends it."""
    ff = fault_farm
    for host in HOSTS:  # only the impatient worker takes the build
        ff.workers[host].stop()
    impatient = ff.workers.start("fault-c", BINDER_SERVICE_WAIT="3")
    try:
        repo = unique("cancel-given-back")
        git_server.make_repo(f"github/fault/{repo}", {"Dockerfile": hung_dockerfile(ff, 3)})
        name = ff.api.start(f"{repo_url}/fault/{repo}").json()["name"]
        ff.wait_phase([name], "building", timeout=120)
        with ff.services.mongo.frozen():
            # The build phase ends, waits 3 s for the store and gives the build back.
            time.sleep(FAULT_SECONDS)
        # The whole log: during the freeze every heartbeat logs a failure after it.
        assert f"gave {name} back" in impatient.log_path.read_text(errors="replace")
        started = time.monotonic()
        while True:  # the first answer after the store is back
            response = ff.api.request("DELETE", f"/builds/{name}")
            if response.status_code == 200 or time.monotonic() - started > 5:
                break
        assert response.status_code == 200, response.text
        wait_cancelled(ff, name, timeout=10)
        assert time.monotonic() - started < 5
        wait_log_end(ff, name, "== build cancelled: Cancelled by request.")
    finally:
        impatient.stop()
        ff.workers.ensure()
