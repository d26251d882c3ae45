"""gunicorn's settings for the API (``binder-build api`` passes
``--config python:api.gunicorn_config``; the command line sets the rest)."""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus-client's multiprocess mode that a process is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
