"""gunicorn's settings for the API (``binder-build api`` passes
``--config python:api.gunicorn_config``; the command line sets the rest)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from api.request_logs import BUILD_ENVIRON_KEY
from workers.process_logs import LOGGING_CONFIG, bind_build

#: Every line in the farm's key=value format (``workers/process_logs.py``); an
#: access line's message holds the request's own fields.
logconfig_dict = LOGGING_CONFIG
access_log_format = ('method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s '
                     'duration_ms=%(M)s remote=%(h)s')


class AccessLogger(Logger):
    """gunicorn's logger, whose access line names the build the request was about
    (the app leaves its name in the WSGI environ; the request is over by then)."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        name = environ.get(BUILD_ENVIRON_KEY)
        if name is None:
            super().access(resp, req, environ, request_time)
            return
        with bind_build(name):
            super().access(resp, req, environ, request_time)


logger_class = AccessLogger

#: Seconds an idle kept-alive connection stays open (gunicorn's default is 2). A
#: launcher or proxy that reuses its connection after a pause must not find it
#: closed under its request; 75 s outlasts the usual proxy idle timeout (60 s),
#: so the proxy, not the API, closes first.
keepalive = 75


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus-client's multiprocess mode that a process is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
