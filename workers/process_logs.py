"""Process logs in ``key=value`` form, carrying the build and phase being worked on.

Phases bind the build's name and phase with :func:`bind_build`; a filter on
the handlers adds them to every record, so each log line of a worker says
which build it is about.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

_build: contextvars.ContextVar[str] = contextvars.ContextVar("build", default="-")
_phase: contextvars.ContextVar[str] = contextvars.ContextVar("phase", default="-")

FORMAT = ("%(asctime)s level=%(levelname)s logger=%(name)s build=%(build)s phase=%(phase)s "
          "%(message)s")


class BuildContextFilter(logging.Filter):
    """Adds ``build`` and ``phase`` attributes to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.build = _build.get()
        record.phase = _phase.get()
        return True


@contextlib.contextmanager
def bind_build(name: str, phase: str) -> Iterator[None]:
    """Within the block, log lines carry ``build=name phase=phase``."""
    build_token, phase_token = _build.set(name), _phase.set(phase)
    try:
        yield
    finally:
        _build.reset(build_token)
        _phase.reset(phase_token)


def configure_handler(handler: logging.Handler) -> None:
    handler.addFilter(BuildContextFilter())
    handler.setFormatter(logging.Formatter(FORMAT))


def configure_logger(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` the build context and the format."""
    for handler in logger.handlers:
        configure_handler(handler)
