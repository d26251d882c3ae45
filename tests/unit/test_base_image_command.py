"""Making the base image from the command line (``base-image``, ``up``, ``services``):
an engine that does not answer is a sentence saying which engine, not a traceback."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from workers.cli import main


def test_an_engine_that_does_not_answer_is_named_not_a_traceback(tmp_path: Path) -> None:
    socket = tmp_path / "no-engine.sock"
    result = CliRunner().invoke(main, ["base-image"], env={
        "DOCKER_HOST": f"unix://{socket}", "BINDER_DATA_DIR": str(tmp_path / "data"),
        "BINDER_BASE_IMAGE": None, "BINDER_CONFIG": None})
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # not the SDK's exception
    assert result.output.startswith(
        f"Error: The Docker engine at unix://{socket} does not answer, so the base image "
        "cannot be made")
    assert "Is the engine running? Check DOCKER_HOST." in result.output
