"""The command lines the farm's own commands run."""

from __future__ import annotations

from gunicorn.config import Config as GunicornConfig

from common.config import load_config
from workers.cli.server import gunicorn_command


def test_the_api_runs_without_gunicorns_per_user_control_socket() -> None:
    argv = gunicorn_command(load_config(environ={}))
    assert argv[1:3] == ["-m", "gunicorn"]
    # Parsed by the installed gunicorn itself: the flag is one it knows, and it
    # turns the control socket off (another farm's gunicornc cannot reach this one).
    parsed = GunicornConfig().parser().parse_args(argv[3:])
    assert parsed.control_socket_disable is True
    assert parsed.control_socket is None
