"""gunicorn's settings for the API (``binder-build api`` passes
``--config python:api.gunicorn_config``; the command line sets the rest)."""

from __future__ import annotations

import datetime as dt
import traceback
from typing import Any

from gunicorn.glogging import Logger

from api.request_logs import BUILD_ENVIRON_KEY
from workers.process_logs import LOGGING_CONFIG, bind_build

#: Every line in the farm's key=value format (``workers/process_logs.py``); an
#: access line's message holds the request's own fields (``access_line``).
logconfig_dict = LOGGING_CONFIG


def access_line(resp: Any, environ: dict[str, Any], request_time: dt.timedelta) -> str:
    """The message of a request's access line::

        method=GET path="/builds/NAME" status=200 bytes=812 duration_ms=3 remote=127.0.0.1

    Made from the few values it shows: gunicorn's ``access_log_format`` way builds
    every atom of the request (each header among them) for any line, which took
    twice the time of this whole line for every API read.
    """
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    path = str(environ.get("PATH_INFO")).replace('"', '\\"')
    duration_ms = request_time.seconds * 1000 + request_time.microseconds // 1000
    return (f'method={environ.get("REQUEST_METHOD")} path="{path}" status={status} '
            f'bytes={getattr(resp, "sent", None)} duration_ms={duration_ms} '
            f'remote={environ.get("REMOTE_ADDR", "-")}')


class AccessLogger(Logger):
    """gunicorn's logger, whose access line (``access_line``) names the build the
    request was about (the app leaves its name in the WSGI environ; the request is
    over by then)."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any],
               request_time: dt.timedelta) -> None:
        if not self.access_log_enabled:
            return
        try:
            line = access_line(resp, environ, request_time)
        except Exception:  # a line that cannot be made never fails the request
            self.error(traceback.format_exc())
            return
        name = environ.get(BUILD_ENVIRON_KEY)
        if name is None:
            self.access_log.info("%s", line)
            return
        with bind_build(name):
            self.access_log.info("%s", line)


logger_class = AccessLogger

#: Seconds an idle kept-alive connection stays open (gunicorn's default is 2). A
#: launcher or proxy that reuses its connection after a pause must not find it
#: closed under its request; 75 s outlasts the usual proxy idle timeout (60 s),
#: so the proxy, not the API, closes first.
keepalive = 75

#: gthread, spreading new connections over the workers (``api/gunicorn_worker.py``).
worker_class = "api.gunicorn_worker.SpreadingThreadWorker"


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus-client's multiprocess mode that a process is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
