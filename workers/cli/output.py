"""How the user commands print: tables, fields, JSON and errors, for terminals and pipes.

On a terminal output is coloured and tables are drawn; anything else (a
pipe, a file, CI) gets the same content as plain text, tab-separated tables
and no escape codes, so it can be read in a log or cut into columns.
``NO_COLOR`` turns colours off on a terminal too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from common.quoting import plain_line
from common.terminal_text import shown_line
from workers.cli.build_watch import parse_time
from workers.cli.farm_client import ApiError

STATUS_STYLES = {"queued": "bright_black", "running": "yellow", "cancelling": "bright_black",
                 "completed": "green", "failed": "red", "cancelled": "bright_black"}
STATUS_ICONS = {"queued": "○", "running": "●", "cancelling": "⊘", "completed": "✓",
                "failed": "✗", "cancelled": "⊘"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (for output that is not a terminal)."""
    return _ANSI.sub("", text)


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m 05s``, ``1h 02m``; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def ago(timestamp: str | None, now: dt.datetime | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago`` from an API timestamp."""
    moment = parse_time(timestamp)
    if moment is None:
        return ""
    seconds = max(0.0, ((now or dt.datetime.now(dt.UTC)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


class Output:
    """Where a command prints: ``out`` for results, ``err`` for errors and notes."""

    def __init__(self, out: Console | None = None, err: Console | None = None) -> None:
        self.out = out or Console(highlight=False, soft_wrap=True)
        self.err = err or Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def terminal(self) -> bool:
        """Whether results go to a terminal (spinners, colours, drawn tables)."""
        return self.out.is_terminal

    def line(self, text: str | Text = "") -> None:
        self.out.print(text, markup=False)

    def note(self, text: str) -> None:
        """A remark for the person, not the result: goes to stderr."""
        self.err.print(text, markup=False, style="bright_black")

    def json(self, data: Any) -> None:
        """Data as JSON, never coloured, whatever the output is."""
        print(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False), flush=True)

    def json_line(self, data: Any) -> None:
        print(json.dumps(data, ensure_ascii=False), flush=True)

    def log_line(self, text: str) -> None:
        """A build log line: its colours on a terminal, plain text elsewhere."""
        text = shown_line(text)
        if self.out.is_terminal and self.out.color_system is not None:
            self.out.print(Text.from_ansi(text), soft_wrap=True)
        else:
            print(strip_ansi(text), flush=True)

    def error(self, error: ApiError) -> None:
        """The error's sentence, then each suggestion on its own line."""
        self.err.print(Text.assemble(("error: ", "bold red"), plain_line(error.message)))
        for suggestion in error.suggestions:
            self.err.print(Text.assemble("  - ", plain_line(suggestion)), style="yellow")

    def status(self, status: str | None) -> Text:
        value = status or ""
        icon = STATUS_ICONS.get(value, "")
        if not self.terminal:
            return Text(value)
        return Text(f"{icon} {value}".strip(), style=STATUS_STYLES.get(value, ""))

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """``label  value`` lines, aligned; empty values are left out."""
        shown = [(label, value) for label, value in pairs if value not in (None, "", [], {})]
        width = max((len(label) for label, _ in shown), default=0)
        for label, value in shown:
            # A record's text may quote a repository's output: shown without its escapes.
            text = value if isinstance(value, Text) else Text(plain_line(str(value)))
            self.out.print(Text.assemble((label.ljust(width), "bold"), "  ", text))

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A drawn table on a terminal; tab-separated lines with a header elsewhere."""
        rows = list(rows)
        if not self.terminal:
            print("\t".join(column.upper() for column in columns))
            for row in rows:
                print("\t".join(_plain(cell) for cell in row), flush=True)
            return
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column.upper(), overflow="fold")
        for row in rows:
            table.add_row(*(cell if isinstance(cell, Text) else Text(_plain(cell))
                            for cell in row))
        self.out.print(table)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    return str(cell)
