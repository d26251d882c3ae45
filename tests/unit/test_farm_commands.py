"""The command lines the farm's own commands run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from gunicorn.config import Config as GunicornConfig

from common.config import load_config
from workers.cli import main, server
from workers.cli.procfile_runner import PROCESS_EXITED
from workers.cli.server import _prepare_store, gunicorn_command, stopped_by_itself


def test_the_api_runs_without_gunicorns_per_user_control_socket() -> None:
    argv = gunicorn_command(load_config(environ={}))
    assert argv[1:3] == ["-m", "gunicorn"]
    # Parsed by the installed gunicorn itself: the flag is one it knows, and it
    # turns the control socket off (another farm's gunicornc cannot reach this one).
    parsed = GunicornConfig().parser().parse_args(argv[3:])
    assert parsed.control_socket_disable is True
    assert parsed.control_socket is None


def run_procfile(tmp_path: Path, procfile: str, *names: str,
                 stop_once_started: bool = False) -> tuple[int, str]:
    """Run ``procfile``'s processes with the runner ``up`` uses; its status and output.
    With ``stop_once_started``, SIGTERM goes to the runner once it said each process
    started (by then it handles the signal: earlier, on a loaded machine, the signal
    would kill a runner still importing)."""
    path = tmp_path / "Procfile"
    path.write_text(procfile)
    runner = subprocess.Popen([sys.executable, "-m", "workers.cli.procfile_runner", str(path),
                               *names], stdout=subprocess.PIPE, text=True)
    seen = ""
    if stop_once_started:
        assert runner.stdout is not None
        while not all(f"{name}.1 started" in seen for name in names):
            line = runner.stdout.readline()
            assert line, f"the runner ended before its processes started:\n{seen}"
            seen += line
        runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=30)
    return runner.returncode, seen + output


def test_a_process_that_exits_on_its_own_stops_the_farm_named_and_failing(
        tmp_path: Path) -> None:
    status, output = run_procfile(tmp_path, "api: sleep 30\nworker: sleep 0.5\n",
                                  "api", "worker")
    assert status == PROCESS_EXITED
    assert "worker.1 exited on its own (rc=0), so the farm stopped" in output
    assert "api.1 stopped" in output  # honcho stopped the others


def test_a_killed_process_is_named_too(tmp_path: Path) -> None:
    status, output = run_procfile(tmp_path, "api: sleep 30\nworker: sleep 0.5; kill -9 $$\n",
                                  "api", "worker")
    assert status == PROCESS_EXITED
    assert "worker.1 exited on its own (rc=-9)" in output


def test_a_stop_asked_for_is_not_a_process_exiting(tmp_path: Path) -> None:
    status, output = run_procfile(tmp_path, "api: sleep 30\nworker: sleep 30\n",
                                  "api", "worker", stop_once_started=True)
    assert status != PROCESS_EXITED
    assert "SIGTERM received" in output
    assert "exited on its own" not in output


def test_up_fails_when_its_processes_stop_unasked() -> None:
    with pytest.raises(click.ClickException, match="one of its processes exited"):
        stopped_by_itself(PROCESS_EXITED)
    with pytest.raises(click.ClickException, match="status 0"):
        stopped_by_itself(0)


def test_up_goes_on_when_the_store_cannot_be_prepared(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 2: the processes will create the collections later.
    config = load_config(mongo_url="mongodb://127.0.0.1:2", mongo_timeout_ms=200)
    _prepare_store(config)
    said = capsys.readouterr().out
    assert said.startswith("store | WARNING: collections not prepared: The build database")
    assert "create them when the store answers" in said


@pytest.mark.parametrize("command", ["beat", "api", "worker", "flower", "up", "services"])
def test_a_data_folder_that_cannot_be_made_is_a_sentence_naming_it(
        tmp_path: Path, command: str) -> None:
    """Every farm command keeps its key and state under BINDER_DATA_DIR: one that
    cannot be made stops the command with its name before anything starts."""
    (tmp_path / "a-file").write_text("")
    data = tmp_path / "a-file" / "data"
    result = CliRunner().invoke(main, [command], env={"BINDER_DATA_DIR": str(data),
                                                      "BINDER_CONFIG": None})
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert result.output == (f"Error: The data folder {data} (BINDER_DATA_DIR) cannot be "
                             "used: Not a directory.\n")


@pytest.mark.parametrize("host_id", ["gpu,builds", "a@b", "a/b", "a b"])
def test_a_host_id_that_cannot_name_a_queue_is_refused_before_the_worker_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_id: str) -> None:
    """The id names the host's queue (``-Q host.ID,builds``: a comma would add a queue),
    its Celery node (``ID@machine``) and its API path (``/hosts/ID/drain``)."""
    started: list[list[str]] = []
    monkeypatch.setattr(server, "_exec", lambda argv, *args, **kwargs: started.append(argv))
    env = {"BINDER_DATA_DIR": str(tmp_path), "BINDER_CONFIG": None,
           "DOCKER_HOST": "unix:///var/run/docker.sock"}
    result = CliRunner().invoke(main, ["worker", "--host-id", host_id], env=env)
    assert (result.exit_code, started) == (1, [])
    assert result.output.startswith(f"Error: The host id {host_id!r} cannot name a "
                                    "Docker host's queue"), result.output
    result = CliRunner().invoke(main, ["worker", "--host-id", "gpu-1.example"], env=env)
    assert result.exit_code == 0, result.output
    assert started[0][started[0].index("-Q") + 1] == "host.gpu-1.example,builds"


@pytest.mark.parametrize("options", [["--host-id", "host-b"], ["--docker-host", "unix:///x.sock"],
                                     ["--concurrency", "2"], ["--config", "farm.json"]])
@pytest.mark.parametrize("command", [["hosts"], ["drain", "host-a"], ["undrain", "host-a"]])
def test_the_workers_own_options_are_refused_before_a_host_command(
        monkeypatch: pytest.MonkeyPatch, options: list[str], command: list[str]) -> None:
    """``worker --host-id X drain Y`` would otherwise drain Y and drop X unsaid."""
    monkeypatch.setattr(server, "_exec", lambda argv, *args, **kwargs: pytest.fail("started"))
    done = CliRunner().invoke(main, ["worker", *options, *command, "--url", "http://127.0.0.1:9"],
                              env={"BINDER_CONFIG": "farm.json"})
    assert done.exit_code == 2, done.output
    assert (f"{options[0]} is an option of the worker itself; binder-build worker "
            f"{command[0]} takes none of the worker's options") in " ".join(done.output.split())


def test_a_config_file_named_by_the_environment_does_not_stop_host_commands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    done = CliRunner().invoke(main, ["worker", "hosts", "--help"],
                              env={"BINDER_CONFIG": "farm.json"})
    assert done.exit_code == 0, done.output


def test_drain_says_its_host_is_lost_and_stops_when_the_host_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting on a host whose worker died ends when the reaper gives its builds back;
    the wait says so, and a host no longer listed ends it with an error, not forever."""
    from workers.cli import hosts
    from workers.cli.farm_client import FarmClient
    monkeypatch.setattr(hosts, "POLL_SECONDS", 0)
    listed = [[{"host": "host-a", "state": "lost", "running": ["b1"]}],
              [{"host": "host-a", "state": "lost", "running": ["b1"]}], []]
    monkeypatch.setattr(FarmClient, "drain", lambda self, host, draining: {
        "host": "host-a", "state": "draining", "running": ["b1"]})
    monkeypatch.setattr(FarmClient, "hosts", lambda self: listed.pop(0))
    done = CliRunner().invoke(main, ["worker", "drain", "host-a", "--url", "http://127.0.0.1:9"])
    said = " ".join(done.output.split())
    assert done.exit_code == 1, done.output
    assert said.count("host-a is not heard from") == 1, said
    assert "go back to the queue once they go unheard" in said
    assert "error: host-a is no longer among the farm's hosts" in said
    assert listed == []
