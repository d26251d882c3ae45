"""gunicorn's settings for the API (``binder-build api`` passes
``--config python:api.gunicorn_config``; the command line sets the rest)."""

from __future__ import annotations

from typing import Any

from workers.process_logs import LOGGING_CONFIG

#: Every line in the farm's key=value format (``workers/process_logs.py``); an
#: access line's message holds the request's own fields.
logconfig_dict = LOGGING_CONFIG
access_log_format = ('method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s '
                     'duration_ms=%(M)s remote=%(h)s')


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus-client's multiprocess mode that a process is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
