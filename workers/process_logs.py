"""The farm's process logs: one ``key=value`` line per record (logfmt), each naming the
host, the build, its phase and attempt.

Every process (API under gunicorn, workers, beat) logs through
:class:`LogfmtFormatter` with :class:`BuildContextFilter` on its handlers::

    time=2026-01-01T12:00:00.123Z level=INFO logger=workers.reaper host=host-a
    build=owner-repo phase=build attempt=1 msg="restarting ..."

Fields come in that order on every line; ``-`` where there is no build (a
worker between tasks, an API request about no build). ``msg`` (and ``exc``,
the traceback) are quoted with newlines escaped, so one record is one line
that ``grep build=owner-repo`` or any logfmt reader takes apart.

A phase binds its build with :func:`bind_build`; the API binds the build a
request names. The host is the process's: a worker's host id, else the
machine's name. :func:`log_everything` brings in what others write: Python
warnings (``logger=py.warnings``) and the lines of third-party loggers
(tornado's and Flower's in the Flower process) that end at the root logger.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import socket
from collections.abc import Iterator

_build: contextvars.ContextVar[str] = contextvars.ContextVar("build", default="-")
_phase: contextvars.ContextVar[str] = contextvars.ContextVar("phase", default="-")
_attempt: contextvars.ContextVar[str] = contextvars.ContextVar("attempt", default="-")
_host = socket.gethostname()

#: The fields every line starts with, in order.
FIELDS = ("time", "level", "logger", "host", "build", "phase", "attempt")


def set_host(host: str) -> None:
    """Name this process's host on every line (a worker's host id)."""
    global _host
    _host = host or socket.gethostname()


class BuildContextFilter(logging.Filter):
    """Adds ``host``, ``build``, ``phase`` and ``attempt`` attributes to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.host = _host
        record.build = _build.get()
        record.phase = _phase.get()
        record.attempt = _attempt.get()
        return True


def quote(value: str) -> str:
    """A logfmt value: bare when it is one plain word, else double-quoted and escaped."""
    if value and not any(c in value for c in ' ="\\\n\r\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


class LogfmtFormatter(logging.Formatter):
    """One ``key=value`` line per record; see the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        values = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname, "logger": record.name,
            "host": getattr(record, "host", _host),
            "build": getattr(record, "build", "-"), "phase": getattr(record, "phase", "-"),
            "attempt": str(getattr(record, "attempt", "-")),
        }
        parts = [f"{key}={quote(str(values[key]))}" for key in FIELDS]
        parts.append(f"msg={quote(record.getMessage())}")
        if record.exc_info:
            parts.append(f"exc={quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


@contextlib.contextmanager
def bind_build(name: str, phase: str = "-", attempt: int | str = "-") -> Iterator[None]:
    """Within the block, log lines carry ``build=name phase=phase attempt=attempt``."""
    tokens = (_build.set(name), _phase.set(phase), _attempt.set(str(attempt)))
    try:
        yield
    finally:
        _build.reset(tokens[0])
        _phase.reset(tokens[1])
        _attempt.reset(tokens[2])


def configure_handler(handler: logging.Handler) -> None:
    if not any(isinstance(f, BuildContextFilter) for f in handler.filters):
        handler.addFilter(BuildContextFilter())
    handler.setFormatter(LogfmtFormatter())


def configure_logger(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` the build context and the format."""
    for handler in logger.handlers:
        configure_handler(handler)


def log_everything() -> None:
    """Make every line of this process a logfmt line: Python warnings become records of
    ``py.warnings``, and the root logger, where every other logger's records end,
    writes in the format (to stderr, at INFO, when nothing set it up before).

    Call it before a library sets up logging of its own: tornado (Flower) adds its
    own stderr handler only to a root logger that has none.
    """
    logging.captureWarnings(True)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
    configure_logger(root)


#: ``logging.config.dictConfig`` for a process whose logs go to stderr (gunicorn's
#: ``logconfig_dict``): every logger, gunicorn's own included, in the farm's format.
LOGGING_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"build": {"()": BuildContextFilter}},
    "formatters": {"logfmt": {"()": LogfmtFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "logfmt",
                            "filters": ["build"], "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
    },
}
