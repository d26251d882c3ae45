"""What ``/proc`` says of the machine's processes: their parents and resident memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def process_statuses() -> Iterator[tuple[int, dict[str, str]]]:
    """Each live process's id and the fields of its ``/proc/PID/status`` (a process
    that ends while it is read is passed over)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        yield int(status.parent.name), fields


def rss_mb(fields: dict[str, str]) -> float:
    """The resident memory in a process's status fields, in MiB (0 for a kernel thread)."""
    return int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
