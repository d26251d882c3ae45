"""Making the base image from the command line (``base-image``, ``up``, ``services``):
an engine that does not answer is a sentence saying which engine, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_lock_and_tag_together_are_refused_not_one_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--lock only re-pins the recipe's wheels: a --tag beside it would be ignored."""
    import workers.base_image

    locked: list[object] = []
    monkeypatch.setattr(workers.base_image, "write_lock", lambda **kwargs: locked.append(kwargs))
    result = CliRunner().invoke(main, ["base-image", "--lock", "--tag", "reg/base:x"],
                                env={"BINDER_DATA_DIR": str(tmp_path), "BINDER_CONFIG": None})
    assert (result.exit_code, locked) == (2, [])
    assert "--lock re-pins the recipe's wheels and builds no image: it takes no --tag." \
        in result.output


def test_services_help_says_it_makes_the_base_image_unless_told_not_to() -> None:
    result = CliRunner().invoke(main, ["services", "--help"], terminal_width=120)
    assert "[default: base-image]" in result.output
