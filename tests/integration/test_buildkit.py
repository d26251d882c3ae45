"""BuildKit builds: the memory limit, whole step logs, and stopping a build.

The memory limit and the step log limits are properties of the engine, so
those tests run on the second host (``second_host``: a farm and engine of
their own), never reconfiguring the engine other tests share.
"""

from __future__ import annotations

import re
import time

from tests.integration.conftest import (
    RUN_ID,
    SECOND_HOST_MEMORY,
    SECOND_HOST_PIDS,
    SecondHost,
    unique,
)
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from tests.support.processes import commands_running, wait_until
from tests.support.service_clients import base_image

BASE_IMAGE = base_image()


def build(api: ApiClient, git_server: GitServer, owner: str, files: dict[str, str],
          timeout: float = 300) -> dict:
    repo = unique(owner)
    git_server.make_repo(f"github/{owner}/{repo}", files)
    response = api.start(f"{git_server.url}/github/{owner}/{repo}")
    assert response.status_code == 200, response.text
    return api.wait(response.json()["name"], timeout)


def test_step_allocating_past_the_memory_limit_fails_saying_so(
        second_host: SecondHost, git_server: GitServer) -> None:
    api = second_host.api
    record = build(api, git_server, "memory", {"Dockerfile": (
        f"FROM {second_host.base_image}\n"
        "RUN python3 -c \"data = b'x' * (600 * 1024 * 1024); print(len(data))\"\n")})
    log = api.logs(record["name"])
    assert record["status"] == "failed", (record, log)
    assert "ran out of memory" in record["error"], record["error"]
    assert record["cause"] == "resources", record
    assert SECOND_HOST_MEMORY in record["error"]
    assert f"build memory limit {SECOND_HOST_MEMORY}" in log


def test_step_starting_threads_past_the_process_limit_fails_saying_so(
        second_host: SecondHost, git_server: GitServer) -> None:
    """Processes and threads count together against the build cgroup's pids limit, so
    a step that starts them without end stops there, not at the host's ``pid_max``."""
    api = second_host.api
    threads = 2 * SECOND_HOST_PIDS
    record = build(api, git_server, "threads", {"Dockerfile": (
        f"FROM {second_host.base_image}\n"
        "RUN python3 -c \"import threading, time; [threading.Thread(target=time.sleep, "
        f"args=(30,), daemon=True).start() for _ in range({threads})]\"\n")})
    log = api.logs(record["name"])
    assert record["status"] == "failed", (record, log)
    assert "can't start new thread" in log, log[-3000:]
    assert record["error"].endswith(
        f"could not start a process or thread (exit code 1): builds on this farm may have "
        f"{SECOND_HOST_PIDS} processes and threads at once."), record["error"]
    assert record["cause"] == "resources", record
    assert f"build memory limit {SECOND_HOST_MEMORY}, {SECOND_HOST_PIDS} processes" in log


#: Prints numbered lines in bursts of a thousand, about 1 MiB/s, as a
#: verbose compiler does.
CHATTY = """\
import sys, time
for i in range(int(sys.argv[1])):
    print(f"line {i:06d} " + "x" * 88)
    if i % 1000 == 999:
        sys.stdout.flush()
        time.sleep(0.1)
"""


def test_a_step_printing_3_mib_of_log_arrives_whole(
        second_host: SecondHost, git_server: GitServer) -> None:
    api = second_host.api
    lines = 32 * 1024  # 101 bytes each: a little over 3 MiB, at about 1 MiB/s
    record = build(api, git_server, "chatty", {"chatty.py": CHATTY, "Dockerfile": (
        f"FROM {second_host.base_image}\nCOPY chatty.py /tmp/\n"
        f"RUN python3 /tmp/chatty.py {lines}\n")})
    log = api.logs(record["name"])
    assert record["status"] == "completed", (record, log[-3000:])
    numbers = [int(match.group(1)) for match in
               re.finditer(r"^#\d+ [\d.]+ line (\d{6}) x{88}$", log, re.M)]
    assert numbers == list(range(lines))
    assert "output clipped" not in log


def test_cancel_stops_a_buildkit_build_and_leaves_nothing_running(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    marker = f"sleep {3000 + int(RUN_ID, 16) % 997}"
    repo = unique("bkcancel")
    git_server.make_repo(f"github/stop/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo step started && {marker}\n"})
    name = api.start(f"{repo_url}/stop/{repo}").json()["name"]
    assert wait_until(lambda: bool(commands_running(marker)), 120), api.logs(name)
    started = time.monotonic()
    response = api.request("DELETE", f"/builds/{name}")
    assert response.status_code == 200, response.text
    record = api.wait(name, timeout=20)
    assert record["status"] == "cancelled", record
    assert wait_until(lambda: not commands_running(marker), 10), commands_running(marker)
    assert time.monotonic() - started < 20
    assert "step started" in api.logs(name)


def test_an_image_no_template_holds_fails_before_its_push(
        second_host: SecondHost, git_server: GitServer) -> None:
    """The second host verifies nothing: the CMD is checked before the push all the same."""
    api = second_host.api
    words = ", ".join(f'"w{index}"' for index in range(300))
    record = build(api, git_server, "longcmd", {"Dockerfile": (
        f"FROM {second_host.base_image}\nCMD [{words}]\n")})
    log = api.logs(record["name"])
    assert record["status"] == "failed", (record, log[-3000:])
    assert "the image's CMD has 300 words" in record["error"], record["error"]
    assert record["cause"] == "repository", record
    assert "built " in log and "== pushing" not in log, log[-3000:]


def test_dockers_own_syntax_line_builds_with_the_built_in_frontend(
        api: ApiClient, git_server: GitServer) -> None:
    """``# syntax=docker/dockerfile:1`` would make the engine pull that frontend from
    Docker Hub; the farm builds with the engine's own and says so in the log."""
    marker = unique("built")  # in the RUN line, so no layer cache skips it
    record = build(api, git_server, "syntax", {"Dockerfile": (
        "# syntax=docker/dockerfile:1\n# escape=`\n"
        f"FROM {BASE_IMAGE}\nRUN echo {marker}-`\n  builtin-frontend\n")})
    log = api.logs(record["name"])
    assert record["status"] == "completed", (record, log)
    assert ("Dockerfile line 1: the build uses the Docker engine's built-in Dockerfile "
            "frontend, not docker/dockerfile:1") in log, log
    assert f"{marker}- builtin-frontend" in log, log  # the escape directive still applied


def test_syntax_the_engine_does_not_know_is_explained(api: ApiClient,
                                                      git_server: GitServer) -> None:
    record = build(api, git_server, "newsyntax", {"Dockerfile": (
        f"FROM {BASE_IMAGE}\nCOPY --link Dockerfile /tmp/\n")})
    assert record["status"] == "failed", record
    assert record["error"].endswith("dockerfile parse error line 2: Unknown flag: link"), record
    assert any("its built-in frontend" in text for text in record["suggestions"]), record


def test_a_step_printing_megabytes_without_a_newline_fails_saying_so(
        api: ApiClient, git_server: GitServer) -> None:
    """Printed at once without a line break, 3 MiB leave the engine's client spinning
    without a word; the build ends ``failed`` with a sentence instead of at its timeout."""
    marker = unique("long")  # in the RUN line, so no layer cache skips it
    record = build(api, git_server, "longline", {"Dockerfile": (
        f"FROM {BASE_IMAGE}\n"
        f"RUN python3 -c \"print('{marker}' + 'x' * 3 * 2**20, end='')\"\n")}, timeout=180)
    assert record["status"] == "failed", record
    assert record["error"].startswith("A build step printed more than 1 MiB without a line "
                                      "break"), record
    assert record["cause"] == "repository", record
