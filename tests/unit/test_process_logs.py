"""Process logs: one logfmt line per record, naming host, build, phase and attempt."""

from __future__ import annotations

import io
import logging
import logging.config
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from flask import current_app

import workers.process_logs as process_logs
from tests.unit.test_api_scopes import make_app
from workers.process_logs import FIELDS, LOGGING_CONFIG, bind_build, configure_handler, set_host


def parse(line: str) -> dict[str, str]:
    """A logfmt line back into its fields (shlex undoes the quoting for these values)."""
    assert "\n" not in line
    return dict(part.split("=", 1) for part in shlex.split(line))


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    configure_handler(handler)
    logger = logging.getLogger(f"test.process_logs.{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def lines(out: io.StringIO) -> list[dict[str, str]]:
    return [parse(line) for line in out.getvalue().splitlines()]


def test_every_line_names_host_build_phase_and_attempt(
        captured: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    logger, out = captured
    monkeypatch.setattr(process_logs, "_host", process_logs._host)
    set_host("host-a")
    logger.info("between builds")
    with bind_build("owner-repo", "build", 2):
        logger.warning('pushing "%s" to\tthe registry', "img:1")
    logger.info("after")
    first, during, after = lines(out)
    assert list(first)[:len(FIELDS)] == list(FIELDS) and list(first)[-1] == "msg"
    assert [first[k] for k in ("host", "build", "phase", "attempt")] == ["host-a", "-", "-", "-"]
    assert [during[k] for k in ("level", "host", "build", "phase", "attempt")] == [
        "WARNING", "host-a", "owner-repo", "build", "2"]
    assert during["msg"] == 'pushing "img:1" to\\tthe registry'
    assert after["build"] == "-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])


def test_a_traceback_stays_on_its_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    with bind_build("owner-repo", "fetch", 1):
        try:
            raise RuntimeError("line one\nline two")
        except RuntimeError:
            logger.exception("fetch failed")
    [line] = lines(out)
    assert line["msg"] == "fetch failed" and line["build"] == "owner-repo"
    assert "Traceback" in line["exc"] and "line one\\nline two" in line["exc"]


def test_gunicorn_logging_config_formats_every_logger() -> None:
    logging.config.dictConfig(LOGGING_CONFIG)
    try:
        handler = logging.getLogger("gunicorn.error").handlers[0]
        record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "Booting worker",
                                   None, None)
        assert all(f.filter(record) for f in handler.filters)
        fields = parse(handler.format(record))
        assert fields["msg"] == "Booting worker" and fields["build"] == "-"
        assert logging.getLogger().handlers[0].formatter.__class__ is \
            process_logs.LogfmtFormatter
    finally:
        logging.getLogger().handlers.clear()
        for name in ("gunicorn.error", "gunicorn.access"):
            logging.getLogger(name).handlers.clear()


def test_api_lines_name_the_build_of_the_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    app = make_app(tmp_path, monkeypatch)

    @app.after_request
    def _log(response: object) -> object:
        logger.info("answered %s", current_app.name)
        return response

    app.test_client().get("/builds/owner-repo-main")
    app.test_client().get("/templates/")
    about_build, about_none = lines(out)
    assert about_build["build"] == "owner-repo-main"
    assert about_none["build"] == "-"


@pytest.mark.parametrize("command", ["beat", "worker"])
def test_celery_prints_no_banner_between_log_lines(command: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import workers.cli.server as server

    calls: list[list[str]] = []
    monkeypatch.setattr(server.os, "execvpe", lambda file, argv, environ: calls.append(argv))
    result = CliRunner().invoke(getattr(server, command), [], env={
        "BINDER_DATA_DIR": str(tmp_path), "BINDER_API_KEY": "admin-key-0123456789",
        "BINDER_CREDENTIALS_FILE": str(tmp_path / "none.json"), "BINDER_CONFIG": None,
        "DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert result.exit_code == 0, result.output
    [argv] = calls
    assert argv.index("--quiet") < argv.index(command)  # celery's global option


#: What the Flower process does: the farm's logging first, then Flower's options
#: (tornado's option parser sets up logging as Flower's command line parses), then
#: a Python warning, tornado's and Flower's own lines and a library's warning.
_FLOWER_LIKE = """
import logging, warnings
from workers.process_logs import log_everything
log_everything()
from tornado.options import parse_command_line
parse_command_line(["flower", "--logging=info"])
warnings.warn("an old option", DeprecationWarning)
logging.getLogger("tornado.access").info("200 GET /api/workers (127.0.0.1) 2.10ms")
logging.getLogger("flower.command").info("Visit me at http://127.0.0.1:5555")
logging.getLogger("celery.utils.functional").warning("a third-party warning")
"""


def test_warnings_and_third_party_lines_are_logfmt() -> None:
    result = subprocess.run([sys.executable, "-W", "always", "-c", _FLOWER_LIKE],
                            capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    records = [parse(line) for line in result.stderr.splitlines()]
    assert [(r["logger"], r["level"]) for r in records] == [
        ("py.warnings", "WARNING"), ("tornado.access", "INFO"), ("flower.command", "INFO"),
        ("celery.utils.functional", "WARNING")]
    assert "DeprecationWarning: an old option" in records[0]["msg"]
    assert all(list(r)[:len(FIELDS)] == list(FIELDS) for r in records)


def test_log_everything_twice_adds_no_second_handler_or_filter() -> None:
    script = ("import logging\nfrom workers.process_logs import log_everything\n"
              "log_everything(); log_everything()\n"
              "[h] = logging.getLogger().handlers\nprint(len(h.filters))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_the_reapers_lines_about_a_build_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build the reaper restarts or sends again is found by ``grep build=NAME``."""
    import workers.reaper as reaper
    from common.config import load_config

    lost = {"name": "owner-lost", "build_id": "b1", "attempt": 1, "lease": {"host": "gone"}}
    queued = {"name": "owner-unsent", "build_id": "b2", "attempt": 1}
    monkeypatch.setattr(reaper.worker_store, "all_workers", lambda: {})
    monkeypatch.setattr(reaper.worker_store, "prune", lambda after: 0)
    monkeypatch.setattr(reaper, "_running_with_lease", lambda config: [lost])
    monkeypatch.setattr(reaper, "broker_epoch", lambda config: "e1")
    monkeypatch.setattr(reaper, "verdict", lambda build, *rest: ("restart", "its worker stopped"))
    monkeypatch.setattr(reaper.leases, "restart",
                        lambda build, reason, config: {**build, "attempt": 2})
    monkeypatch.setattr(reaper, "unsent_builds", lambda config, hosts: [queued])
    monkeypatch.setattr(reaper, "withdraw_left", lambda config, now: 0)

    def enqueue(celery: object, config: object, record: dict[str, object]) -> int:
        reaper.log.info("sent %s", record["name"])
        return 1
    monkeypatch.setattr(reaper, "enqueue_build", enqueue)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    configure_handler(handler)
    monkeypatch.setattr(reaper.log, "handlers", [handler])
    monkeypatch.setattr(reaper.log, "propagate", False)
    monkeypatch.setattr(reaper.log, "level", logging.INFO)
    config = load_config(environ={})
    done = reaper.reap(None, config, reaper.StoreWatch(config))
    assert done["restarted"] == done["requeued"] == 1
    found = {(line["build"], line["attempt"], line["msg"].split()[0]) for line in lines(out)}
    assert found == {("owner-lost", "1", "restarting"), ("owner-lost", "1", "sent"),
                     ("owner-unsent", "1", "sent")}, out.getvalue()
