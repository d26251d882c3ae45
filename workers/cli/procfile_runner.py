"""Run the farm's processes (the packaged Procfile) under honcho, for ``up``.

``python -m workers.cli.procfile_runner PROCFILE NAME...`` starts the named
process types with honcho's manager and printer: each line prefixed by its
process; when one process exits, honcho stops the others. A stop asked for
(SIGTERM or Ctrl-C to the runner) exits as honcho does. A process that
exits on its own ends the run too (``up`` does not restart processes in
place; a supervisor restarts ``up``): the runner says which process it was
and exits ``PROCESS_EXITED``, even when that process exited 0, so whoever
runs ``up`` notices.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path
from typing import Any

from honcho.environ import expand_processes, parse_procfile
from honcho.manager import Manager
from honcho.printer import Message, Printer

#: The runner's exit status when a farm process exited on its own.
PROCESS_EXITED = 3

_STOPPED = re.compile(r"(?P<name>\S+) stopped \(rc=(?P<rc>-?\d+)\)")
_SIGNALLED = re.compile(r"SIG\w+ received")


class FirstExitPrinter(Printer):
    """honcho's printer, noting whether a stop was asked for and which process
    stopped first (honcho reports both only as lines of its ``system`` output)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked_to_stop = False
        self.first_exit: tuple[str, int] | None = None

    def write(self, message: Message) -> None:
        if message.name == "system" and not self.asked_to_stop and self.first_exit is None:
            text = str(message.data).strip()
            stopped = _STOPPED.fullmatch(text)
            if _SIGNALLED.fullmatch(text):
                self.asked_to_stop = True
            elif stopped:
                self.first_exit = (stopped["name"], int(stopped["rc"]))
        super().write(message)


def run(procfile: Path, names: list[str]) -> int:
    """Run the process types ``names`` of ``procfile`` until they stop; the exit status."""
    processes = parse_procfile(procfile.read_text()).processes
    printer = FirstExitPrinter(sys.stdout)
    manager = Manager(printer)
    for process in expand_processes({name: processes[name] for name in names}):
        manager.add_process(process.name, process.cmd, quiet=process.quiet,
                            env={**os.environ, **process.env})
    manager.loop()
    if printer.asked_to_stop or printer.first_exit is None:
        return int(manager.returncode or 0)
    name, code = printer.first_exit
    printer.write(Message("line", f"{name} exited on its own (rc={code}), so the farm "
                                  "stopped\n", dt.datetime.now(), "system", None))
    return PROCESS_EXITED


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))
