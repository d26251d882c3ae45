"""``workers/binder_yml.py``: template metadata from ``.binder.yml``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.errors import BuildFailure
from workers.binder_yml import find_binder_yml, load_binder_yml


def write(tmp_path: Path, text: str, name: str = ".binder.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_file_is_parsed_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """
limits:
  memory: 512M
  cpu: 0.5
hardware:
  gpu: 1
services:
  - name: postgres
    version: "15"
    params: {db: demo}
  - name: redis
port: 8080
command: jupyter lab --ip=0.0.0.0
timeout: 30
""")
    assert load_binder_yml(path) == {
        "limits": {"memory": "512M", "cpu": 0.5},
        "hardware": {"gpu": 1},
        "services": [{"name": "postgres", "version": "15", "params": {"db": "demo"}},
                     {"name": "redis", "version": None, "params": {}}],
        "port": 8080,
        "command": "jupyter lab --ip=0.0.0.0",
        "timeout": 30,
    }


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_empty_file_gives_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_binder_yml(write(tmp_path, text)) == {"limits": {}, "hardware": {},
                                                      "services": []}


@pytest.mark.parametrize("memory", ["2G", "512M", "1.5 GiB", "100k", "1024"])
def test_memory_sizes(tmp_path: Path, memory: str) -> None:
    path = write(tmp_path, f"limits: {{memory: '{memory}'}}\n")
    assert load_binder_yml(path)["limits"]["memory"] == memory


@pytest.mark.parametrize(("text", "field"), [
    ("colour: blue\n", "colour"),
    ("limits: {memory: lots}\n", "limits.memory"),
    ("limits: {memory: 2X}\n", "limits.memory"),
    ("limits: {cpu: -1}\n", "limits.cpu"),
    ("limits: {cpu: 0}\n", "limits.cpu"),
    ("limits: {cpu: many}\n", "limits.cpu"),
    ("limits: {disk: 1G}\n", "limits.disk"),
    ("port: 0\n", "port"),
    ("port: 70000\n", "port"),
    ("port: http\n", "port"),
    ("timeout: 0\n", "timeout"),
    ("timeout: 100000\n", "timeout"),
    ("command: ''\n", "command"),
    ("services: [{version: '1'}]\n", "services.0.name"),
    ("services: [{name: db, extra: 1}]\n", "services.0.extra"),
    ("hardware: [gpu]\n", "hardware"),
])
def test_invalid_fields_are_named(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(BuildFailure) as caught:
        load_binder_yml(write(tmp_path, text))
    assert caught.value.message.startswith(".binder.yml is invalid: ")
    assert f"{field}: " in caught.value.message
    assert caught.value.suggestions


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(BuildFailure) as caught:
        load_binder_yml(write(tmp_path, "port: 0\ntimeout: 0\n"))
    assert "port: " in caught.value.message and "timeout: " in caught.value.message


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(BuildFailure, match=r"^binder\.yml is not valid YAML"):
        load_binder_yml(write(tmp_path, "limits: {memory: [\n", "binder.yml"))


@pytest.mark.parametrize("text", ["- port: 80\n", "just a string\n", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(BuildFailure, match="must be a mapping"):
        load_binder_yml(write(tmp_path, text))


@pytest.mark.parametrize("cpu", [".nan", ".inf", "true"])
def test_cpu_must_be_a_finite_number(tmp_path: Path, cpu: str) -> None:
    with pytest.raises(BuildFailure, match="limits.cpu"):
        load_binder_yml(write(tmp_path, f"limits: {{cpu: {cpu}}}\n"))


# finding the file


def test_find_prefers_dot_binder_yml(tmp_path: Path) -> None:
    write(tmp_path, "port: 1\n", "binder.yml")
    write(tmp_path, "port: 2\n", ".binder.yaml")
    assert find_binder_yml(tmp_path) == tmp_path / ".binder.yaml"
    write(tmp_path, "port: 3\n", ".binder.yml")
    assert find_binder_yml(tmp_path) == tmp_path / ".binder.yml"


def test_find_ignores_links_and_directories(tmp_path: Path) -> None:
    outside = write(tmp_path, "port: 1\n", "outside.yml")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    os.symlink(outside, checkout / ".binder.yml")
    (checkout / ".binder.yaml").mkdir()
    assert find_binder_yml(checkout) is None
