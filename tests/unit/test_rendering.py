"""Dockerfile rendering: requirements.txt, the default, and a repository's own Dockerfile."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from common.config import load_config
from common.errors import BuildFailure
from workers.buildpacks.base import BuildInputs
from workers.buildpacks.compose import default_command
from workers.buildpacks.default import DefaultBuildPack
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.buildpacks.requirements import RequirementsBuildPack

BASE = "registry.test:5000/binder-base:jupyterlab4"
CMD = f"CMD {json.dumps(default_command())}"
COPY_REPO = "COPY --chown=1000:1000 repo/ /home/jovyan/"
STAGE = "COPY --chown=1000:1000 repo/"
TAIL = ["USER jovyan", "WORKDIR /home/jovyan", "EXPOSE 8888", CMD]


def inputs_for(tmp_path: Path, where: str | None, text: str = "", **environ: str) -> BuildInputs:
    checkout = tmp_path / "checkout"
    checkout.mkdir(exist_ok=True)
    if where is not None:
        (checkout / where).parent.mkdir(parents=True, exist_ok=True)
        (checkout / where).write_text(text)
    config = load_config(environ={"BINDER_REGISTRY": "registry.test:5000", **environ})
    return BuildInputs(checkout, PurePosixPath(where) if where else None, config)


def index_of(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


# requirements.txt


def test_requirements_are_installed_before_the_repository_is_copied(tmp_path: Path) -> None:
    text = RequirementsBuildPack().render(inputs_for(tmp_path, "requirements.txt", "numpy\n"))
    lines = text.splitlines()
    assert lines[0] == f"FROM {BASE}"
    stage = lines.index(f"{STAGE}requirements.txt /tmp/binder/requirements.txt")
    install = index_of(lines, "RUN --mount=type=cache,id=binder-uv")
    assert lines[install].endswith("-r /tmp/binder/requirements.txt")
    assert stage < install < lines.index(COPY_REPO)
    assert lines.count(COPY_REPO) == 1
    assert lines[-4:] == TAIL
    assert "LABEL org.binder-build.config=requirements.txt" in lines
    assert text.endswith("\n")


def test_requirements_in_binder_folder_are_staged_from_there(tmp_path: Path) -> None:
    text = RequirementsBuildPack().render(
        inputs_for(tmp_path, "binder/requirements.txt", "numpy\n"))
    assert f"{STAGE}binder/requirements.txt /tmp/binder/requirements.txt" in text.splitlines()


@pytest.mark.parametrize(("where", "line", "local"), [
    ("requirements.txt", "wheelinrepo-1.0-py3-none-any.whl", True),
    ("requirements.txt", "pkg.tar.gz ; python_version >= '3'", True),
    ("binder/requirements.txt", "pkg.tar.gz", True),  # beside the requirements file
    ("requirements.txt", "missing-1.0-py3-none-any.whl", False),  # not in the repository
    ("requirements.txt", "numpy", False),
])
def test_a_bare_name_of_a_repository_file_is_installed_after_the_copy(
        tmp_path: Path, where: str, line: str, local: bool) -> None:
    inputs = inputs_for(tmp_path, where, f"{line}\n")
    for name in ("wheelinrepo-1.0-py3-none-any.whl", "pkg.tar.gz"):
        (inputs.checkout / where).parent.joinpath(name).write_bytes(b"PK")
    lines = RequirementsBuildPack().render(inputs).splitlines()
    install = index_of(lines, "RUN --mount=type=cache,id=binder-uv")
    assert (install > lines.index(COPY_REPO)) is local
    assert lines[install].endswith(f"-r {where}" if local else "-r /tmp/binder/requirements.txt")


def test_no_index_options_without_a_pip_index(tmp_path: Path) -> None:
    text = RequirementsBuildPack().render(inputs_for(tmp_path, "requirements.txt", "numpy\n"))
    assert "--index-url" not in text and "--trusted-host" not in text


def test_http_index_is_used_and_trusted(tmp_path: Path) -> None:
    text = RequirementsBuildPack().render(inputs_for(
        tmp_path, "requirements.txt", "numpy\n",
        BINDER_PIP_INDEX_URL="http://127.0.0.1:8123/simple"))
    install = next(line for line in text.splitlines() if "uv pip install" in line)
    assert "--index-url http://127.0.0.1:8123/simple" in install
    pip = RequirementsBuildPack().render(inputs_for(
        tmp_path, "requirements.txt", "numpy\n", BINDER_PIP_INDEX_URL="http://127.0.0.1:8123/simple",
        BINDER_PYTHON_INSTALLER="pip"))
    install = next(line for line in pip.splitlines() if "-m pip install" in line)
    assert "--index-url http://127.0.0.1:8123/simple --trusted-host 127.0.0.1 " in install


def test_https_index_is_not_marked_trusted(tmp_path: Path) -> None:
    text = RequirementsBuildPack().render(inputs_for(
        tmp_path, "requirements.txt", "numpy\n",
        BINDER_PIP_INDEX_URL="https://pypi.example/simple"))
    assert "--index-url https://pypi.example/simple" in text
    assert "--trusted-host" not in text


@pytest.mark.parametrize("requirements", [
    "-e .\n",
    "numpy\n  -e ./pkg\n",
    "-r other.txt\n",
    "--requirement=other.txt\n",
    "-c constraints.txt\nnumpy\n",
    "./local_pkg\n",
    "file:wheels/x.whl\n",
])
def test_local_references_copy_the_whole_repository_first(tmp_path: Path,
                                                          requirements: str) -> None:
    lines = RequirementsBuildPack().render(
        inputs_for(tmp_path, "requirements.txt", requirements)).splitlines()
    copy = lines.index(COPY_REPO)
    install = index_of(lines, "RUN --mount=type=cache,id=binder-uv")
    assert copy < install
    assert lines[install].endswith(" -r requirements.txt")
    assert lines[copy + 1] == "WORKDIR /home/jovyan"
    assert not any(line.startswith(f"{STAGE}requirements.txt") for line in lines)


def test_local_reference_keeps_the_binder_folder_path(tmp_path: Path) -> None:
    lines = RequirementsBuildPack().render(
        inputs_for(tmp_path, "binder/requirements.txt", "-e .\n")).splitlines()
    assert lines[index_of(lines, "RUN --mount=type=cache,id=binder-uv")].endswith(
        " -r binder/requirements.txt")


@pytest.mark.parametrize("requirements", [
    "numpy==1.26 # -e . in a comment\n",
    "--index-url https://pypi.example/simple\nnumpy\n",
    "git+https://example.org/pkg.git\n",
])
def test_remote_requirements_keep_the_dependency_layer(tmp_path: Path, requirements: str) -> None:
    text = RequirementsBuildPack().render(inputs_for(tmp_path, "requirements.txt", requirements))
    assert f"{STAGE}requirements.txt /tmp/binder/requirements.txt" in text


@pytest.mark.parametrize("requirements", [
    "--find-links ./wheels\nmypkg\n",
    "-f wheels\nmypkg\n",
    "wheels/mypkg-1.0-py3-none-any.whl\n",
])
def test_find_links_and_relative_paths_copy_the_repository_first(
        tmp_path: Path, requirements: str) -> None:
    lines = RequirementsBuildPack().render(
        inputs_for(tmp_path, "requirements.txt", requirements)).splitlines()
    assert lines.index(COPY_REPO) < index_of(lines, "RUN --mount=type=cache,id=binder-uv")


# default


def test_default_is_the_base_image_plus_the_repository(tmp_path: Path) -> None:
    text = DefaultBuildPack().render(inputs_for(tmp_path, None))
    assert text.splitlines() == [
        f"FROM {BASE}", "USER root", "LABEL org.binder-build.config=none",
        "ENV REPO_DIR=/home/jovyan", "ENV NB_PYTHON_PREFIX=/srv/env KERNEL_PYTHON_PREFIX=/srv/env",
        "USER jovyan", COPY_REPO, "WORKDIR /home/jovyan", *TAIL]


def test_default_uses_a_configured_base_image(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, None, BINDER_BASE_IMAGE="example/base:1")
    assert DefaultBuildPack().render(inputs).startswith("FROM example/base:1\n")
    assert DefaultBuildPack().extra_files(inputs) == {}


# Dockerfile


def test_dockerfile_is_rendered_verbatim_with_its_own_context(tmp_path: Path) -> None:
    text = "FROM python:3.12\nRUN echo hi\n"
    inputs = inputs_for(tmp_path, "binder/Dockerfile", text)
    pack = DockerfileBuildPack()
    assert pack.owns_context is True
    assert pack.render(inputs) == text


def test_any_base_is_allowed_when_no_list_is_configured(tmp_path: Path) -> None:
    DockerfileBuildPack().check(inputs_for(tmp_path, "Dockerfile", "FROM anything:latest\n"))


@pytest.mark.parametrize("dockerfile", ["FROM python:3.12 AS build\nFROM build\n",
                                        "ARG BASE=python:3.12\nFROM $BASE\n"])
def test_allowed_base_image_passes(tmp_path: Path, dockerfile: str) -> None:
    inputs = inputs_for(tmp_path, "Dockerfile", dockerfile,
                        BINDER_ALLOWED_BASE_IMAGES="python:3.12,debian:12")
    DockerfileBuildPack().check(inputs)


@pytest.mark.parametrize("dockerfile", [
    "FROM evil/image:1\n",
    "FROM python:3.12 AS build\nFROM evil/image:1\nCOPY --from=build / /\n",
    "from --platform=linux/amd64 evil/image:1\n",
    "ARG BASE=evil/image:1\nFROM $BASE\n",
    "FROM python:3.12\nFR\\\nOM evil/image:1\n",
])
def test_disallowed_base_image_is_refused_naming_the_allowed(tmp_path: Path,
                                                             dockerfile: str) -> None:
    inputs = inputs_for(tmp_path, "Dockerfile", dockerfile,
                        BINDER_ALLOWED_BASE_IMAGES="python:3.12,debian:12")
    with pytest.raises(BuildFailure) as caught:
        DockerfileBuildPack().check(inputs)
    assert "python:3.12, debian:12" in caught.value.message


def test_only_the_farms_own_images_come_from_its_or_a_loopback_registry(
        tmp_path: Path) -> None:
    """The farm's registry and base image may be on loopback or private addresses; other
    images there, and any other registry there, are refused before the engine pulls."""
    farm = {"BINDER_REGISTRY": "127.0.0.1:5000", "BINDER_BASE_IMAGE": "10.0.0.5:5000/base:1"}
    for dockerfile in ("FROM binder-root\n", "FROM 10.0.0.5:5000/base:1\n"):
        DockerfileBuildPack().check(inputs_for(tmp_path, "Dockerfile", dockerfile, **farm))
    for dockerfile, refusal in (("FROM 127.0.0.1:6379/x\n", "from 127.0.0.1:6379, a loopback"),
                                ("FROM 10.0.0.5:5000/other\n", "from 10.0.0.5:5000, a loopback"),
                                ("FROM 127.0.0.1:5000/binder-x\n", "from this farm's registry")):
        inputs = inputs_for(tmp_path, "Dockerfile", dockerfile, **farm)
        with pytest.raises(BuildFailure, match=refusal):
            DockerfileBuildPack().check(inputs)


def test_dockerfile_without_from_is_refused(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "Dockerfile", "# FROM python:3.12\nRUN true\n")
    with pytest.raises(BuildFailure, match="no FROM line"):
        DockerfileBuildPack().check(inputs)
