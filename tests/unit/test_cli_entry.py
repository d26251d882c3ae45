"""``binder-build`` itself: what a first look at the program answers."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from workers.cli import main


def test_the_program_says_its_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"binder-build {version('binder-build')}\n"


def test_the_programs_help_says_where_to_begin() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "binder-build up" in result.output
    assert "binder-build build start" in result.output
    assert "binder-build settings" in result.output
