"""What an unclean stop leaves behind, found and cleared before a service starts again.

A killed run leaves pid files and sockets of the services it managed, and
sometimes a process that is still shutting down. A pid file is stale when
its process is gone, or when its pid now belongs to another program (pids
are reused quickly on a busy machine): it is removed. A process of the
right program that is still there is waited for, bounded. A unix socket
that nothing listens on is stale: removed. Every finding is said as a
sentence for the operator.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

Say = Callable[[str], None]


def program_of(pid: int) -> str | None:
    """The program name a live process runs (``None``: no such process, or a zombie)."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    state = stat.rpartition(")")[2].split()[0]
    if state in {"Z", "X"}:
        return None
    # Interpreted programs (secantusd-py) run as "python3 /path/secantusd-py".
    names = [os.path.basename(part.decode(errors="replace")) for part in argv[:2] if part]
    return " ".join(names) or stat.partition("(")[2].rpartition(")")[0]


def runs(pid: int, program: str) -> bool:
    """True while ``pid`` is alive and runs ``program``."""
    name = program_of(pid)
    return name is not None and program in name.split()


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_gone(pid: int, program: str, timeout: float) -> bool:
    """Wait until ``pid`` no longer runs ``program``; True if it went in time."""
    deadline = time.monotonic() + timeout
    while runs(pid, program):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def clear_pid_file(path: Path, program: str, say: Say, wait: float = 60.0) -> int | None:
    """Remove ``path`` if it is stale; wait up to ``wait`` s for a live ``program``.

    Returns the pid that is still running after the wait (the caller decides
    whether to reuse it or give up), else ``None``.
    """
    if not path.exists():
        return None
    pid = read_pid(path)
    if pid is not None and runs(pid, program):
        say(f"{program} (pid {pid}) of a previous run is still there; waiting up to "
            f"{wait:g} s for it to stop")
        started = time.monotonic()
        if not wait_gone(pid, program, wait):
            return pid
        say(f"{program} (pid {pid}) stopped after {time.monotonic() - started:.1f} s")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    reason = "unreadable" if pid is None else f"process {pid} is gone"
    if pid is not None and program_of(pid) is not None:
        reason = f"pid {pid} now belongs to another program"
    say(f"stale pid file {path} ({reason}): removed")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


def listening(path: Path) -> bool:
    """True when something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
            return True
        except OSError as exc:
            # A full backlog (a frozen server) still means someone listens.
            return exc.errno in {errno.EAGAIN, errno.ETIMEDOUT} or isinstance(exc, TimeoutError)


def clear_socket(path: Path, say: Say) -> None:
    """Remove a unix socket file that nothing listens on."""
    if path.is_socket() and not listening(path):
        say(f"stale socket {path} (nothing listens): removed")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def started_at(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, it names one
    process for good, even after the pid is reused."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[19])


def identity(pid: int) -> str:
    """``"PID STARTED"``, for a pid file that must not be fooled by pid reuse."""
    return f"{pid} {started_at(pid)}"


def same_process(text: str) -> int | None:
    """The pid in an ``identity`` text if that very process still runs, else ``None``."""
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    pid = int(parts[0])
    return pid if str(started_at(pid)) == parts[1] and program_of(pid) else None
