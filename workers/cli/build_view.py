"""What ``build start --follow`` and ``build logs --follow`` show while a build runs.

On a terminal, ``LiveBuildView`` redraws one block in place: each phase
with a spinner while it runs and its elapsed time, the log's latest lines
streaming beneath (colours kept). Elsewhere ``PlainBuildView`` prints the
log as plain lines, in the order it was written: each phase's part starts
with the worker's ``== PHASE on HOST`` line, so the phases are told where
they happened (the record, polled apart from the log, cannot place them
among its lines). ``summarise`` prints the end either way: the image and
template, or the error; in plain text, the phases' times too.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from common.models import is_queued, shown_status
from common.terminal_text import shown_line
from workers.cli.build_watch import WORK_PHASES, seconds_between
from workers.cli.farm_client import ApiError
from workers.cli.output import STATUS_ICONS, STATUS_STYLES, Output, duration, strip_ansi

#: Log lines kept under the phases (fewer on a short terminal).
TAIL_LINES = 16
#: Lines left on screen above the error once a build failed.
FAILED_TAIL_LINES = 10
#: Rows the block uses besides the log: title, phases, blank lines.
_FRAME_ROWS = len(WORK_PHASES) + 4


def _phase_times(record: dict[str, Any], phase: str) -> dict[str, Any]:
    times = (record.get("phases") or {}).get(phase)
    return times if isinstance(times, dict) else {}


def phase_state(record: dict[str, Any], phase: str) -> str:
    """``pending``, ``running``, ``done``, ``failed`` or ``cancelled`` (where it ended
    so) or ``skipped``."""
    times = _phase_times(record, phase)
    status = record.get("status")
    if status in ("failed", "cancelled") and record.get("phase") == phase:
        return str(status)
    if times.get("end") or (times.get("start") and status == "completed"):
        return "done"
    if times.get("start"):
        return "running" if status == "running" else "failed"
    return "skipped" if status == "completed" else "pending"


def phase_seconds(record: dict[str, Any], phase: str, now: dt.datetime | None = None) -> \
        float | None:
    times = _phase_times(record, phase)
    return seconds_between(times.get("start"), times.get("end") or record.get("end-time"), now)


def phase_times(record: dict[str, Any]) -> str:
    """``fetching 1.2s  building 40.1s ...``: each phase that started, with its time."""
    return "  ".join(f"{phase} {duration(phase_seconds(record, phase))}"
                     for phase in WORK_PHASES if _phase_times(record, phase).get("start"))


class LiveBuildView:
    """The redrawn block on a terminal; use as a context manager around the watch."""

    def __init__(self, output: Output, record: dict[str, Any]) -> None:
        self.output = output
        self._record = record
        self._lock = threading.Lock()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._spinners = {phase: Spinner("dots", style="yellow") for phase in
                          ["queued", *WORK_PHASES]}
        self._notes: list[str] = []
        self._live = Live(self, console=output.out, refresh_per_second=8, transient=False,
                          redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> LiveBuildView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.stop()

    # BuildObserver
    def record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._record = record

    def line(self, text: str) -> None:
        shown = shown_line(text)
        if shown.strip():  # blank lines would only push real ones out of the tail
            with self._lock:
                self._tail.append(shown)

    def log_unavailable(self, error: ApiError) -> None:
        with self._lock:
            self._notes.append(f"log not available: {error.message}")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        with self._lock:
            record, tail, notes = dict(self._record), list(self._tail), list(self._notes)
        yield self._title(record)
        yield self._phases(record)
        height = options.height or console.height
        room = max(3, min(TAIL_LINES, height - _FRAME_ROWS - len(notes)))
        if record.get("status") == "completed":
            room = 0  # what is left on screen is the summary; the log is a command away
        elif record.get("status") in ("failed", "cancelled"):
            room = min(room, FAILED_TAIL_LINES)
        lines = [Text.assemble(("│ ", "bright_black"),
                               Text.from_ansi(text, style="bright_black"),
                               no_wrap=True, overflow="ellipsis")
                 for text in (tail[-room:] if room else [])]
        if lines or notes:
            yield Group(Text(""), *lines, *(Text(note, style="yellow") for note in notes))

    def _title(self, record: dict[str, Any]) -> Text:
        status = shown_status(record) or ""
        total = seconds_between(record.get("start-time"), record.get("end-time"))
        return Text.assemble((record.get("name") or "", "bold"), "  ",
                             (record.get("repository") or "", "cyan"), "  ",
                             (status, STATUS_STYLES.get(status, "")), "  ",
                             (duration(total), "bright_black"))

    def _phases(self, record: dict[str, Any]) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=2)
        grid.add_column(min_width=12)
        grid.add_column(justify="right")
        if is_queued(record):
            grid.add_row(self._spinners["queued"], Text("queued"),
                         Text(duration(seconds_between(record.get("start-time"), None)),
                              style="bright_black"))
        for phase in WORK_PHASES:
            state = phase_state(record, phase)
            seconds = duration(phase_seconds(record, phase))
            if state == "running":
                grid.add_row(self._spinners[phase], Text(phase, style="bold"), Text(seconds))
            elif state == "done":
                grid.add_row(Text("✓", style="green"), Text(phase), Text(seconds))
            elif state == "failed":
                grid.add_row(Text("✗", style="red"), Text(phase, style="red"), Text(seconds))
            elif state == "cancelled":
                grid.add_row(Text(STATUS_ICONS["cancelled"], style="bright_black"),
                             Text(phase, style="bright_black"), Text(seconds))
            else:
                label = "cached" if state == "skipped" and record.get("cached") else ""
                grid.add_row(Text("·", style="bright_black"), Text(phase, style="bright_black"),
                             Text(label, style="bright_black"))
        return grid


class PlainBuildView:
    """The build's log as plain lines, for pipes, files and CI logs."""

    def __init__(self, output: Output, record: dict[str, Any],
                 echo: Callable[[str], None] | None = None) -> None:
        self.output = output
        self.echo = echo or output.log_line
        self.echo(f"build {record.get('name')}: {record.get('repository')}")

    def __enter__(self) -> PlainBuildView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def record(self, record: dict[str, Any]) -> None:
        """Nothing: the log tells each phase in its place, the summary their times."""

    def line(self, text: str) -> None:
        self.echo(strip_ansi(shown_line(text)))

    def log_unavailable(self, error: ApiError) -> None:
        self.output.note(f"log not available: {error.message}")


def summarise(output: Output, record: dict[str, Any],
              template: dict[str, Any] | ApiError | None) -> None:
    """The end of a followed build: image and template, or the error and what to do."""
    status = record.get("status") or ""
    total = duration(seconds_between(record.get("start-time"), record.get("end-time")))
    cached = " (cached)" if record.get("cached") else ""
    output.line()
    output.line(Text.assemble(output.status(status), f" in {total}{cached}"))
    if not output.terminal:  # on a terminal the phases' times stay drawn above
        output.fields([("phases", phase_times(record))])
    if status == "completed":
        pairs: list[tuple[str, Any]] = [("image", record.get("image-name"))]
        if isinstance(template, dict):
            pairs += template_pairs(template)
        elif isinstance(template, ApiError):
            pairs.append(("template", f"not shown: {template.message}"))
        output.fields(pairs)
        return
    error = record.get("error") or f"The build ended {status}."
    if status == "cancelled":
        output.note(error)  # someone asked for it: no error
    else:
        output.error(ApiError(error, [str(item) for item in record.get("suggestions") or []]))
    output.note(f"full log: binder-build build logs {record.get('name')}")


def template_pairs(template: dict[str, Any]) -> list[tuple[str, Any]]:
    """A template as ``label, value`` pairs, the run command last."""
    limits = template.get("limits") or {}
    hardware = template.get("hardware") or {}
    services = template.get("services") or []
    return [
        ("template", template.get("name")),
        ("port", template.get("port")),
        ("command", template.get("command")),
        ("limits", ", ".join(f"{key} {value}" for key, value in limits.items())),
        ("hardware", ", ".join(f"{key} {value}" for key, value in hardware.items())),
        ("services", ", ".join(str(service.get("name")) for service in services)),
        ("run", template.get("run-command")),
    ]
