"""A repository Dockerfile's ``# syntax`` line: Docker's own frontend is built with the
engine's built-in one and the log says so; any other frontend is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import BuildFailure
from tests.unit.test_rendering import inputs_for
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.dockerfile_parser.directives import directive_escapes
from workers.dockerfile_parser.images import pulled_images, syntax_images
from workers.repo_yaml import shorten


@pytest.mark.parametrize("directive", [
    "# syntax=docker/dockerfile:1", "#syntax = docker/dockerfile:1.7",
    "# syntax=docker.io/docker/dockerfile:1.4.3", "# syntax=docker/dockerfile",
    "# syntax=docker/dockerfile:latest",
    "# syntax=docker/dockerfile:1@sha256:" + "a" * 64,
    "# SYNTAX=index.docker.io/docker/dockerfile:1",
])
def test_dockers_own_frontend_is_built_with_the_built_in_one(tmp_path: Path,
                                                           directive: str) -> None:
    text = f"{directive}\nFROM debian:12\nRUN true\n"
    inputs = inputs_for(tmp_path, "Dockerfile", text)
    pack = DockerfileBuildPack()
    pack.check(inputs)  # no refusal, and no frontend image to pull
    rendered = pack.render(inputs)
    assert syntax_images(rendered) == []
    assert [use.image for use in pulled_images(rendered)] == ["debian:12"]
    lines = rendered.split("\n")
    assert len(lines) == len(text.split("\n")) and lines[1:] == text.split("\n")[1:]
    assert pack.notices(inputs) == [
        "Dockerfile line 1: the build uses the Docker engine's built-in Dockerfile frontend, "
        f"not {shorten(directive.split('=', 1)[1].strip())} (this farm pulls no frontend); "
        "syntax newer than the engine's fails to parse."]


def test_the_other_directives_keep_their_meaning(tmp_path: Path) -> None:
    text = "# syntax=docker/dockerfile:1\n# escape=`\nFROM debian:12\nRUN echo `\n  hi\n"
    rendered = DockerfileBuildPack().render(inputs_for(tmp_path, "Dockerfile", text))
    assert directive_escapes(rendered.split("\n")) == {"`"}
    assert rendered.split("\n")[2:] == text.split("\n")[2:]  # every line keeps its number
    assert syntax_images(rendered) == []


@pytest.mark.parametrize(("directive", "frontend"), [
    ("# syntax=docker/dockerfile:1-labs", "docker/dockerfile:1-labs"),
    ("# syntax=docker/dockerfile-upstream:master", "docker/dockerfile-upstream:master"),
    ("# syntax=evil/frontend:1", "evil/frontend:1"),
    ("# syntax=ghcr.io/docker/dockerfile:1", "ghcr.io/docker/dockerfile:1"),
    ("# syntax=docker/dockerfile:2", "docker/dockerfile:2"),
])
def test_any_other_frontend_is_refused_even_when_every_image_is_allowed(
        tmp_path: Path, directive: str, frontend: str) -> None:
    inputs = inputs_for(tmp_path, "Dockerfile", f"{directive}\nFROM debian:12\n")
    with pytest.raises(BuildFailure) as refused:
        DockerfileBuildPack().check(inputs)
    assert refused.value.message == (
        f"The Dockerfile's # syntax on line 1 asks for the frontend {frontend}; this farm "
        "builds every Dockerfile with the Docker engine's built-in frontend and runs no "
        "other.")
    assert refused.value.suggestions == [
        "Remove the # syntax line (or make it # syntax=docker/dockerfile:1), and any "
        "instruction only that frontend knows."]


def test_a_line_docker_versions_read_apart_is_refused_not_rewritten(tmp_path: Path) -> None:
    """Indented, the line is a directive to older parsers only: taking it out would make
    the newer ones read the escape directive after it, which they ignore today."""
    text = "  # syntax=docker/dockerfile:1\n# escape=`\nFROM debian:12\n"
    inputs = inputs_for(tmp_path, "Dockerfile", text)
    assert DockerfileBuildPack().render(inputs) == text
    with pytest.raises(BuildFailure, match="asks for the frontend docker/dockerfile:1"):
        DockerfileBuildPack().check(inputs)
