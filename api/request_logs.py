"""The API's log lines name the build a request is about (``build=NAME``), in the
farm's process-log format (``workers/process_logs.py``)."""

from __future__ import annotations

import contextlib

from flask import Flask, g, request

from workers.process_logs import bind_build

#: Where a request leaves the build it named, for gunicorn's access line.
BUILD_ENVIRON_KEY = "binder.build"


def register_request_logs(app: Flask) -> None:
    """Bind the build named in a request's path for the lines logged while it runs."""

    @app.before_request
    def _bind() -> None:
        name = (request.view_args or {}).get("name")
        if name:
            request.environ[BUILD_ENVIRON_KEY] = str(name)
            stack = contextlib.ExitStack()
            stack.enter_context(bind_build(str(name)))
            g.binder_log_context = stack

    @app.teardown_request
    def _unbind(_: BaseException | None) -> None:
        stack = g.pop("binder_log_context", None)
        if stack is not None:
            with contextlib.suppress(ValueError):  # ended in another context: nothing to undo
                stack.close()
