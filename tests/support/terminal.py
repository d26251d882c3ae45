"""Running a command in a pseudo-terminal and reading the screen it leaves.

``run_in_terminal`` gives the program a real terminal of a fixed size (so
it draws colours and redraws in place), feeds everything it writes to a
terminal emulator (pyte), and returns the final screen. ``screen_svg``
renders a screen as an SVG image: the README's terminal screenshots.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyte
from rich.console import Console
from rich.style import Style
from rich.text import Text


def interruptible() -> None:
    """Let Ctrl-C reach the program (a ``preexec_fn``): a shell starts a background
    command with SIGINT ignored, its children inherit that, and Python then installs
    no KeyboardInterrupt handler; a test suite run in the background would otherwise
    interrupt a program that cannot hear it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Terminal:
    """The running program, for a test that types or signals while it watches the screen."""

    process: subprocess.Popen[bytes]
    controller: int

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())


@dataclass
class TerminalRun:
    returncode: int
    raw: str
    screen: pyte.Screen

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")


def run_in_terminal(argv: list[str], env: dict[str, str], columns: int = 100, rows: int = 40,
                    timeout: float = 300,
                    on_screen: Callable[[pyte.Screen, Terminal], None] | None = None) \
        -> TerminalRun:
    """Run ``argv`` on a ``columns`` x ``rows`` terminal until it exits (or ``timeout``).

    ``on_screen`` sees the screen after each write of the program.
    """
    screen = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(screen)
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**env, "TERM": "xterm-256color", "COLORTERM": "truecolor",
           "COLUMNS": str(columns), "LINES": str(rows)}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal, env=env,
                               start_new_session=True, preexec_fn=interruptible)
    os.close(terminal)
    raw = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the program closed its side
                    chunk = b""
                if not chunk:
                    break
                raw += chunk
                stream.feed(chunk)
                if on_screen is not None:
                    on_screen(screen, Terminal(process, controller))
            elif process.poll() is not None:
                break
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return TerminalRun(returncode, raw.decode("utf-8", "replace"), screen)


def _colour(name: str) -> str | None:
    if name == "default":
        return None
    if len(name) == 6 and all(c in "0123456789abcdef" for c in name.lower()):
        return f"#{name}"
    return name.replace("bright", "bright_").replace("__", "_").replace("brown", "yellow")


def screen_text(screen: pyte.Screen) -> Text:
    """The screen's characters with their colours, trailing blank lines dropped."""
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    text = Text()
    for y in range(len(lines)):
        row = screen.buffer[y]
        for x in range(len(lines[y])):
            char = row[x]
            style = Style(color=_colour(char.fg), bgcolor=_colour(char.bg), bold=char.bold,
                          italic=char.italics, underline=char.underscore)
            text.append(char.data, style)
        text.append("\n")
    return text


def screen_svg(screen: pyte.Screen, title: str) -> str:
    """The screen as an SVG terminal window titled ``title``."""
    console = Console(record=True, width=screen.columns, force_terminal=True,
                      color_system="truecolor", file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(screen_text(screen), end="")
    return console.export_svg(title=title)
