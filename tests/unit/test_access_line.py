"""The API's access line: what gunicorn's format made, naming the build."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from api.gunicorn_config import AccessLogger, access_line
from api.request_logs import BUILD_ENVIRON_KEY
from workers.process_logs import BuildContextFilter

#: The line as gunicorn's own format machinery made it.
GUNICORN_FORMAT = ('method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s '
                   'duration_ms=%(M)s remote=%(h)s')


def request(path: str = "/builds/o-r") -> tuple[SimpleNamespace, dict[str, str]]:
    resp = SimpleNamespace(status="404 NOT FOUND", sent=812,
                           headers=[("Content-Type", "application/json")])
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "RAW_URI": path,
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": "probe"}
    return resp, environ


def test_the_line_is_what_gunicorns_format_made() -> None:
    took = dt.timedelta(seconds=1, microseconds=3999)
    for path in ("/builds/o-r", '/builds/a"b c'):
        resp, environ = request(path)
        gunicorn = Logger(Config())
        atoms = SafeAtoms(gunicorn.atoms(resp, SimpleNamespace(headers=[]), environ, took))
        assert access_line(resp, environ, took) == GUNICORN_FORMAT % atoms
    resp, environ = request()
    assert access_line(resp, environ, took) == (
        'method=GET path="/builds/o-r" status=404 bytes=812 duration_ms=1003 '
        'remote=127.0.0.1')


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(BuildContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_line_names_the_build_the_request_was_about() -> None:
    config = Config()
    config.set("accesslog", "-")
    logger = AccessLogger(config)
    kept = Kept()
    logger.access_log.addHandler(kept)
    resp, environ = request()
    logger.access(resp, None, {**environ, BUILD_ENVIRON_KEY: "o-r"}, dt.timedelta())
    logger.access(resp, None, {**environ, "PATH_INFO": "/health"}, dt.timedelta())
    assert [(r.getMessage().split()[1], r.__dict__["build"]) for r in kept.records] == [
        ('path="/builds/o-r"', "o-r"), ('path="/health"', "-")]
