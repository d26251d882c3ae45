"""The user commands (``binder-build build ...``, ``templates ...``) against the running farm.

Each test runs the installed ``binder-build`` program as a user would, with
the farm's URL and key in ``BINDER_URL``/``BINDER_API_KEY``, its output a
pipe (plain text, no colours), or a pseudo-terminal where the live view is
the point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pyte
from rich.spinner import SPINNERS

from common import build_store
from common.db import get_db
from common.terminal_text import shown_line
from tests.integration.conftest import API_KEY, RUN_ID
from tests.support.api_cases import BASE_IMAGE, plain_repo, slow_repo, ticking_repo
from tests.support.farm import BIN, ApiClient
from tests.support.git_server import GitServer
from tests.support.screenshots import screenshot_dir
from tests.support.terminal import Terminal, interruptible, run_in_terminal, screen_svg
from workers.cli.output import strip_ansi

PHASES = ["fetching", "detecting", "building", "pushing", "registering"]
SPINNER_FRAMES = "".join(SPINNERS["dots"]["frames"])


def cli_env(api: ApiClient, **extra: str) -> dict[str, str]:
    env = {**os.environ, "BINDER_URL": api.url, "BINDER_API_KEY": API_KEY,
           "BINDER_CLIENT_CONFIG": "", **extra}
    env.pop("NO_COLOR", None)
    return env


def cli(api: ApiClient, *args: str, timeout: float = 300,
        **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "binder-build"), *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(api, **extra), stdin=subprocess.DEVNULL)


def cli_background(api: ApiClient, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "binder-build"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(api),
                            stdin=subprocess.DEVNULL, preexec_fn=interruptible)


def failing_repo(git_server: GitServer, repo_url: str) -> str:
    repo = f"broken-{uuid.uuid4().hex[:6]}"
    git_server.make_repo(f"github/cli/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} about to fail && exit 3\n"})
    return f"{repo_url}/cli/{repo}"


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


def test_start_follow_of_a_running_build_follows_it(api: ApiClient, git_server: GitServer,
                                                    repo_url: str) -> None:
    url = ticking_repo(git_server, repo_url, ticks=6, owner="cli")
    name = api.start(url).json()["name"]
    done = cli(api, "build", "start", url, "--follow")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{name} is already building: following it" in done.stderr + done.stdout
    assert "tick-6" in done.stdout and api.build(name)["status"] == "completed"
    history = api.request("GET", f"/builds/{name}/history").json()
    assert [attempt["build-id"] for attempt in history] == [api.build(name)["build-id"]]


def test_a_start_of_a_running_build_suggests_the_commands_options(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    url = slow_repo(git_server, repo_url, seconds=120, owner="cli")
    name = api.start(url).json()["name"]
    try:
        refused = cli(api, "build", "start", url)
        # HTTP clients are still told the API's field.
        told = api.start(url).json()["suggestions"]
    finally:
        api.request("DELETE", f"/builds/{name}")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"error: Already building the image {name}"), \
        refused.stderr
    assert "--force" in refused.stderr and "force: true" not in refused.stderr, refused.stderr
    assert f"binder-build build logs {name} --follow" in refused.stderr, refused.stderr
    assert any("force: true" in suggestion for suggestion in told), told
    assert_no_traceback(refused)
    api.wait(name, timeout=60)


def test_start_follow_prints_the_log_in_order_and_the_image(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    url = plain_repo(git_server, repo_url, owner="cli")
    done = cli(api, "build", "start", url, "--ref", "main", "--follow")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.split("\n")  # as the log is split
    name = lines[0].split()[1].rstrip(":")
    record = api.build(name)
    assert record["status"] == "completed" and record["ref"] == "main"
    # The log as the farm stores it, line for line and in its order, each phase's
    # lines after its own banner and before the next phase's.
    log = [strip_ansi(shown_line(line)) for line in api.logs(name).split("\n")[:-1]]
    assert lines[1:1 + len(log)] == log, done.stdout
    banners = [next(i for i, line in enumerate(lines) if line.startswith(f"== {phase} on "))
               for phase in PHASES]
    assert banners == sorted(banners), done.stdout
    assert lines[len(log)] == "== build completed", done.stdout
    assert all(f"{phase} " in next(line for line in lines if line.startswith("phases "))
               for phase in PHASES), done.stdout
    assert f"image     {record['image-name']}" in done.stdout, done.stdout
    assert "docker run --rm -it -p 127.0.0.1:8888:8888" in done.stdout
    assert "\x1b[" not in done.stdout, "no colours in a pipe"


def test_start_follow_of_a_failing_repository_exits_1_with_the_error(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    url = failing_repo(git_server, repo_url)
    done = cli(api, "build", "start", url, "--follow")
    assert done.returncode == 1, done.stdout + done.stderr
    name = done.stdout.splitlines()[0].split()[1].rstrip(":")
    record = api.build(name)
    assert record["status"] == "failed"
    assert f"error: {record['error']}" in done.stderr
    assert "about to fail" in done.stdout  # the log streamed before the end
    assert any(line.startswith("== build failed: ") for line in done.stdout.splitlines())
    assert_no_traceback(done)
    # It failed in its build phase: no image to pull, only the one it planned.
    assert record["image-name"] is None and record["planned-image"], record
    shown = cli(api, "build", "status", name)
    assert shown.returncode == 0, shown.stderr
    assert f"planned image  {record['planned-image']}" in shown.stdout, shown.stdout
    assert not any(line.startswith("image ") for line in
                   done.stdout.splitlines() + shown.stdout.splitlines()), shown.stdout


def test_read_commands_print_json_that_parses(api: ApiClient, git_server: GitServer,
                                              repo_url: str) -> None:
    url = plain_repo(git_server, repo_url, owner="cli")
    started = cli(api, "build", "start", url, "--follow", "--json")
    assert started.returncode == 0, started.stderr
    final = json.loads(started.stdout)
    name = final["name"]
    assert final["status"] == "completed" and final["template"]["name"] == name
    assert "== building on " in started.stderr  # the log goes to stderr with --json

    status = json.loads(cli(api, "build", "status", name, "--json").stdout)
    assert status["image-name"] == final["image-name"]
    listed = json.loads(cli(api, "build", "list", "--json", "--limit", "50").stdout)
    assert name in [record["name"] for record in listed]
    history = json.loads(cli(api, "build", "history", name, "--json").stdout)
    assert [attempt["build-id"] for attempt in history] == [final["build-id"]]
    template = json.loads(cli(api, "templates", "show", name, "--json").stdout)
    assert template["image-name"] == final["image-name"]
    templates = json.loads(cli(api, "templates", "list", "--json").stdout)
    assert name in [item["name"] for item in templates]
    for follow in ([], ["--follow"]):
        done = cli(api, "build", "logs", name, "--json", *follow)
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert lines and all("text" in line for line in lines if "event" not in line)
    assert lines[-1] == {"event": "end", "data": "completed"}


def test_list_and_status_show_builds(api: ApiClient, git_server: GitServer,
                                     repo_url: str) -> None:
    names = []
    for _ in range(2):
        url = plain_repo(git_server, repo_url, owner="cli")
        done = cli(api, "build", "start", url)
        assert done.returncode == 0, done.stderr
        names.append(done.stdout.split()[1])
    for name in names:
        api.wait(name, timeout=300)
    listed = cli(api, "build", "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t") == ["NAME", "STATUS", "PHASE", "REPOSITORY", "STARTED",
                                  "DURATION", "CACHED"]
    by_name = {row.split("\t")[0]: row.split("\t") for row in rows}
    for name in names:
        assert by_name[name][1:3] == ["completed", "finished"], listed.stdout
    completed = cli(api, "build", "list", "--status", "failed").stdout
    assert not any(name in completed for name in names)

    status = cli(api, "build", "status", names[0])
    assert "status      completed" in status.stdout, status.stdout
    assert "fetching" in status.stdout and "registering" in status.stdout
    shown = cli(api, "templates", "show", names[0])
    assert f"template    {names[0]}" in shown.stdout and "run         docker run" in shown.stdout


def test_cancel_ends_a_running_build_cancelled(api: ApiClient, git_server: GitServer,
                                               repo_url: str) -> None:
    url = slow_repo(git_server, repo_url, seconds=120, owner="cli")
    follower = cli_background(api, "build", "start", url, "--follow")
    try:
        assert follower.stdout is not None
        name = follower.stdout.readline().split()[1].rstrip(":")
        api.wait_phase(name, "building", timeout=120)
        done = cli(api, "build", "cancel", name)
        assert done.returncode == 0, done.stderr
        assert f"cancelling {name}" in done.stdout
        out, err = follower.communicate(timeout=90)
    finally:
        follower.kill()
        api.request("DELETE", f"/builds/{name}")
    assert api.wait(name, timeout=60)["status"] == "cancelled"
    assert follower.returncode == 1, out + err
    assert "cancelled in" in out and "Cancelled by request." in err and "error:" not in err
    again = cli(api, "build", "cancel", name)
    assert again.returncode == 0 and f"{name} is cancelled" in again.stdout


def test_ctrl_c_exits_130_and_says_how_to_cancel(api: ApiClient, git_server: GitServer,
                                                 repo_url: str) -> None:
    url = slow_repo(git_server, repo_url, seconds=120, owner="cli")
    follower = cli_background(api, "build", "start", url, "--follow")
    assert follower.stdout is not None
    name = follower.stdout.readline().split()[1].rstrip(":")
    try:
        # The slow step: the follower is following a running build (the fetch is over
        # in a tenth of a second, too quick to be seen between two polls).
        api.wait_phase(name, "building", timeout=60)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 130, out + err
        assert f"binder-build build cancel {name}" in err
        assert "Traceback" not in err
        assert api.build(name)["status"] == "running"  # nobody asked to cancel it
    finally:
        follower.kill()
        api.request("DELETE", f"/builds/{name}")
    api.wait(name, timeout=60)


def test_errors_are_a_sentence_and_suggestions(api: ApiClient, tmp_path: Path) -> None:
    missing = cli(api, "build", "status", "no-such-build")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: Could not get build information"), missing.stderr
    assert "\n  - " in missing.stderr
    assert_no_traceback(missing)

    denied = cli(api, "build", "start", "https://github.com/o/r", BINDER_API_KEY="wrong")
    assert denied.returncode == 1 and "error: Unauthorized request" in denied.stderr
    assert_no_traceback(denied)

    bad = cli(api, "build", "start", "file:///etc")
    assert bad.returncode == 1 and bad.stderr.startswith("error: "), bad.stderr
    assert_no_traceback(bad)

    port = api.url.rsplit(":", 1)[1]
    closed = cli(api, "build", "list", BINDER_URL=f"http://127.0.0.1:{int(port) ^ 1}")
    assert closed.returncode == 1 and "Cannot reach the farm" in closed.stderr
    assert_no_traceback(closed)

    config = tmp_path / "client.toml"
    config.write_text(f'url = "{api.url}"\napi_key = "{API_KEY}"\n')
    env = {"BINDER_URL": "", "BINDER_API_KEY": ""}
    from_file = cli(api, "build", "list", "--client-config", str(config), **env)
    assert from_file.returncode == 0, from_file.stderr
    config.write_text("url = [1]\n")
    broken = cli(api, "build", "list", "--client-config", str(config), **env)
    assert broken.returncode == 1 and "url must be a string" in broken.stderr
    assert_no_traceback(broken)


def test_follow_on_a_terminal_draws_phases_and_the_log(api: ApiClient, git_server: GitServer,
                                                       repo_url: str) -> None:
    url = ticking_repo(git_server, repo_url, ticks=6, owner="cli")
    frames: list[str] = []

    def watch(screen: pyte.Screen, terminal: Terminal) -> None:
        shown = "\n".join(screen.display)
        if not frames and "tick-4" in shown and "building" in shown:
            frames.append(screen_svg(screen, "binder-build build start --follow"))
            running = [line for line in screen.display if "building" in line][0]
            assert running.lstrip()[0] in SPINNER_FRAMES, running  # a spinner, not a tick

    screen = run_in_terminal([str(BIN / "binder-build"), "build", "start", url, "--follow"],
                             env=cli_env(api), columns=100, rows=36, timeout=300,
                             on_screen=watch)
    assert screen.returncode == 0, screen.text
    assert frames, "the log streamed while the build ran"
    assert "\x1b[" in screen.raw, "colours on a terminal"
    for phase in PHASES:
        assert any(line.startswith("✓") and phase in line for line in screen.lines), screen.text
    assert "completed in" in screen.text and "image" in screen.text
    shots = screenshot_dir(RUN_ID)
    (shots / "follow.svg").write_text(frames[0])
    (shots / "follow-done.svg").write_text(screen_svg(screen.screen,
                                                      "binder-build build start --follow"))


def test_ctrl_c_on_a_terminal_offers_to_cancel(api: ApiClient, git_server: GitServer,
                                              repo_url: str) -> None:
    url = slow_repo(git_server, repo_url, seconds=120, owner="cli")
    steps: list[str] = []

    def answer(screen: pyte.Screen, terminal: Terminal) -> None:
        shown = "\n".join(screen.display)
        if not steps and "fetching" in shown:
            steps.append("interrupted")
            terminal.process.send_signal(signal.SIGINT)
        elif steps == ["interrupted"] and "Cancel the build" in shown:
            steps.append("answered")
            terminal.type("y\n")

    screen = run_in_terminal([str(BIN / "binder-build"), "build", "start", url, "--follow"],
                             env=cli_env(api), columns=100, rows=36, timeout=120,
                             on_screen=answer)
    name = screen.lines[0].split()[0]
    try:
        assert steps == ["interrupted", "answered"], screen.text
        assert screen.returncode == 130, screen.text
        assert f"cancelling {name}" in screen.text
        assert api.wait(name, timeout=60)["status"] == "cancelled"
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_a_queued_build_whose_cancel_was_asked_reads_cancelling(api: ApiClient,
                                                               repo_url: str) -> None:
    """As the build page shows it (shownStatus): not queued, not running."""
    name = f"queued-{uuid.uuid4().hex[:8]}"
    build_store.create_build(name, {"display_name": f"cli/{name}",
                                    "repository": f"{repo_url}/cli/{name}"})
    get_db().builds.update_one({"_id": name}, {"$set": {"cancel_requested": True}})
    try:
        shown = cli(api, "build", "status", name)
        assert shown.returncode == 0, shown.stderr
        assert "status      cancelling\n" in shown.stdout, shown.stdout
        listed = cli(api, "build", "list", "--status", "running")
        row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
        assert row.split("\t")[1:3] == ["cancelling", "queued"], row
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_json_log_lines_are_the_same_followed_or_not(api: ApiClient, git_server: GitServer,
                                                     repo_url: str) -> None:
    """A progress bar's redraws (carriage returns) read as one line, its last redraw,
    whichever way the log is read: a followed log's events cannot carry a carriage return."""
    repo = f"redraws-{uuid.uuid4().hex[:6]}"
    git_server.make_repo(f"github/cli/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} && printf 'got 10%%\\rgot 100%%\\n'\n"})
    started = cli(api, "build", "start", f"{repo_url}/cli/{repo}", "--follow", "--json")
    assert started.returncode == 0, started.stderr
    name = json.loads(started.stdout)["name"]
    assert "\rgot 100%" in api.logs(name)  # the farm keeps every redraw
    texts = []
    for follow in ([], ["--follow"]):
        done = cli(api, "build", "logs", name, "--json", *follow)
        assert done.returncode == 0, done.stderr
        texts.append([line["text"] for line in map(json.loads, done.stdout.splitlines())
                      if "text" in line])
    assert texts[0] == texts[1], texts
    assert not any("\r" in text for text in texts[0]), texts[0]
    assert any(text.endswith(" got 100%") for text in texts[0]), texts[0]
