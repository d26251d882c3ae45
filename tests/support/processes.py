"""Processes of this machine, to prove a build left nothing running.

BuildKit's step containers are not containers the engine lists (``docker
ps`` never shows them), so tests look for the step's command among the
machine's processes instead; engines here run on the same machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def commands_running(marker: str) -> list[str]:
    """Command lines of running processes that contain ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            continue  # ended while we looked
        if marker in command:
            found.append(command)
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
