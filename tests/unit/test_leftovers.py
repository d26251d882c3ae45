"""Leftovers of an unclean stop: stale pid files and sockets are found and removed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from workers.leftovers import clear_pid_file, clear_socket, program_of, runs


def test_pid_file_of_a_gone_process_is_removed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{child.pid}\n")
    said: list[str] = []
    assert clear_pid_file(pidfile, "dockerd", said.append, wait=1) is None
    assert not pidfile.exists()
    assert said and "stale pid file" in said[0]


def test_pid_reused_by_another_program_is_stale(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this pytest, not a dockerd
    said: list[str] = []
    assert clear_pid_file(pidfile, "dockerd", said.append, wait=1) is None
    assert not pidfile.exists()
    assert "now belongs to another program" in said[0]


def test_a_live_process_is_waited_for(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "0.6"])
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(str(sleeper.pid))
    said: list[str] = []
    assert runs(sleeper.pid, "sleep")
    # The process ends within the wait: the file goes, and both facts are said.
    reaper = threading.Thread(target=sleeper.wait)
    reaper.start()
    assert clear_pid_file(pidfile, "sleep", said.append, wait=10) is None
    reaper.join()
    assert not pidfile.exists()
    assert "still there" in said[0] and "stopped after" in said[1]


def test_a_process_that_does_not_stop_is_returned(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(str(sleeper.pid))
        assert clear_pid_file(pidfile, "sleep", lambda line: None, wait=0.3) == sleeper.pid
        assert pidfile.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert program_of(sleeper.pid) is None


def test_socket_nobody_listens_on_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    live, dead = tmp_path / "live.sock", tmp_path / "dead.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(live))
    server.listen()
    gone = socket.socket(socket.AF_UNIX)
    gone.bind(str(dead))
    gone.close()
    said: list[str] = []
    clear_socket(live, said.append)
    clear_socket(dead, said.append)
    server.close()
    assert live.exists() and not dead.exists()
    assert said == [f"stale socket {dead} (nothing listens): removed"]
