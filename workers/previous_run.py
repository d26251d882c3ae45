"""What a previous ``binder-build up`` left behind, found and cleared before this one.

``up`` keeps its run files under ``DATA_DIR/run``: ``up.pid`` (its own
process and ``running`` or ``stopping``), ``farm.pgid`` (the process group
of the farm's processes: API, workers, beat, Flower) and one
``<service>.pid`` per service it started. Each names a process by pid and
start time, so a reused pid is never mistaken for it. A run that was killed
leaves them behind, with processes that may still be there or still
stopping (they get SIGTERM when ``up`` dies). Before starting, the next run:

* refuses to start beside a live ``up`` of the same data dir, and waits
  (bounded) for one that is stopping;
* stops the farm processes left over (they hold the API and Flower ports);
* for each service: stops what is left of it, waiting (bounded) for it to
  finish stopping before killing it, and removes its pid file; this run
  starts it afresh;

and says what it found. Leftovers of a service's own (the Docker engine's
pid file and socket) are cleared by the launcher just before it starts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from common.config import Config
from workers.leftovers import Say, group_members, identity, same_process, started_at

#: Seconds to wait for a previous run, or one of its processes, to finish stopping.
STOP_WAIT = 60.0


class AlreadyRunning(RuntimeError):
    """Another ``up`` runs with the same data dir."""


def _wait_gone(text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while same_process(text) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class RunFiles:
    """The run files of ``up`` for one data dir."""

    def __init__(self, config: Config, say: Say, root: Path | None = None) -> None:
        self.root = root or config.data_path / "run"
        self.say = say

    def path(self, name: str) -> Path:
        return self.root / name

    def _read(self, name: str) -> str:
        try:
            return self.path(name).read_text()
        except OSError:
            return ""

    def _write(self, name: str, text: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.path(f".{name}.new")
        temporary.write_text(text)
        temporary.replace(self.path(name))

    def record_up(self, state: str) -> None:
        self._write("up.pid", f"{identity(os.getpid())} {state}\n")

    def record_farm(self, pgid: int) -> None:
        self._write("farm.pgid", f"{identity(pgid)}\n")

    def record_service(self, name: str, pid: int) -> None:
        self._write(f"{name}.pid", f"{identity(pid)}\n")

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()

    def clear(self) -> None:
        for name in ("up.pid", "farm.pgid", *(f"{service}.pid" for service in SERVICES)):
            self.forget(name)

    def check_previous_up(self) -> None:
        """Refuse to run beside a live ``up``; wait for one that is stopping."""
        text = self._read("up.pid")
        if not text:
            return
        pid = same_process(text)
        if pid is None:
            self.say(f"the previous run (pid {text.split()[0]}) ended without stopping; "
                     "cleaning up after it")
        elif text.split()[-1] != "stopping":
            raise AlreadyRunning(
                f"the farm already runs from {self.root.parent} (binder-build up, pid {pid}); "
                f"stop it (Ctrl-C, or kill {pid}) or use another BINDER_DATA_DIR.")
        else:
            self.say(f"the previous run (pid {pid}) is still stopping; waiting up to "
                     f"{STOP_WAIT:g} s")
            if not _wait_gone(text, STOP_WAIT):
                raise AlreadyRunning(f"the previous run (pid {pid}) did not stop within "
                                     f"{STOP_WAIT:g} s; kill it ({pid}) and try again.")
        self.forget("up.pid")

    def stop_leftover_farm(self) -> None:
        """Stop the API, workers, beat and Flower a killed run left running."""
        text = self._read("farm.pgid")
        self.forget("farm.pgid")
        if not text.split() or not text.split()[0].isdigit():
            return
        pgid = int(text.split()[0])
        leader = started_at(pgid)
        # A live leader with another start time is a new group that reused the
        # number; while any member of ours lives, the number is not reused.
        if leader is not None and same_process(text) is None:
            return
        members = group_members(pgid)
        if not members:
            return
        self.say(f"{len(members)} farm processes of the previous run are still there "
                 f"(process group {pgid}); stopping them")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.say(f"killed what was left of process group {pgid}")

    def stop_leftover_service(self, name: str) -> None:
        """Stop what a killed run left of service ``name`` (running, or still
        stopping) and remove its pid file, so this run starts it afresh."""
        self.stop_service(name, "of the previous run is still there")

    def stop_service(self, name: str, found: str) -> bool:
        """Stop the recorded process of service ``name`` (SIGTERM, then SIGKILL after
        ``STOP_WAIT``) and remove its pid file; ``found`` says what it is in the line
        that says so. False when no such process runs."""
        text = self._read(f"{name}.pid")
        if not text:
            return False
        self.forget(f"{name}.pid")
        pid = same_process(text)
        if pid is None:
            self.say(f"stale pid file of {name} (process {text.split()[0]} is gone): removed")
            return False
        self.say(f"{name} (pid {pid}) {found}; stopping it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(text, STOP_WAIT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(text, 10)
            self.say(f"{name} (pid {pid}) did not stop within {STOP_WAIT:g} s; killed it")
        return True


def detached_services(config: Config, say: Say) -> RunFiles:
    """The pid files of the services ``binder-build services`` started detached
    (``DATA_DIR/run/services``): apart from ``up``'s, which stops its own."""
    return RunFiles(config, say, config.data_path / "run" / "services")


#: The services ``up`` may start, by the name of their pid file.
SERVICES = ("docker", "redis", "mongo", "registry")
