"""``workers/binder_yml.py``: template metadata from ``.binder.yml``."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from common.errors import BuildFailure
from common.sizes import format_size, parse_size
from workers.binder_yml import find_binder_yml, load_binder_yml
from workers.config_files import cap_for


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


@pytest.mark.parametrize("memory", ["0", "0G", "0.0001K", "0.5"])
def test_a_memory_limit_of_nothing_is_refused(tmp_path: Path, memory: str) -> None:
    """Docker reads a memory limit of 0 as none at all: past every ceiling."""
    with pytest.raises(BuildFailure) as caught:
        load_binder_yml(write(tmp_path, f"limits: {{memory: '{memory}'}}\n"))
    assert "limits.memory: must be more than 0 bytes (0 would mean no limit)" in \
        caught.value.message


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


@pytest.mark.parametrize("text", ["limits: {cpu: 1" + "0" * 400 + "}\n",
                                  "services: [{name: db, params: {a: 9223372036854775808}}]\n"])
def test_numbers_the_farm_cannot_hold_are_refused_with_a_sentence(tmp_path: Path,
                                                                  text: str) -> None:
    # neither a float nor MongoDB, where the record keeps the file, holds them
    with pytest.raises(BuildFailure, match=r"^\.binder\.yml \(line \d\): integers must fit"):
        load_binder_yml(write(tmp_path, text))


@pytest.mark.parametrize("cpu", [".nan", ".inf", "true"])
def test_cpu_must_be_a_finite_number(tmp_path: Path, cpu: str) -> None:
    with pytest.raises(BuildFailure, match="limits.cpu"):
        load_binder_yml(write(tmp_path, f"limits: {{cpu: {cpu}}}\n"))


# finding the file


def test_find_prefers_dot_binder_yml(tmp_path: Path) -> None:
    write(tmp_path, "port: 1\n", "binder.yml")
    write(tmp_path, "port: 2\n", ".binder.yaml")
    assert find_binder_yml(tmp_path) == PurePosixPath(".binder.yaml")
    write(tmp_path, "port: 3\n", ".binder.yml")
    assert find_binder_yml(tmp_path) == PurePosixPath(".binder.yml")


@pytest.mark.parametrize("folder", ["binder", ".binder"])
def test_find_looks_in_the_config_folder_first(tmp_path: Path, folder: str) -> None:
    (tmp_path / folder).mkdir()
    write(tmp_path, "port: 1\n", ".binder.yml")
    assert find_binder_yml(tmp_path) == PurePosixPath(".binder.yml")  # still read at the root
    write(tmp_path / folder, "port: 2\n", ".binder.yml")
    assert find_binder_yml(tmp_path) == PurePosixPath(f"{folder}/.binder.yml")


def test_find_skips_directories_and_takes_links_inside_the_repository(tmp_path: Path) -> None:
    (tmp_path / ".binder.yml").mkdir()
    write(tmp_path, "port: 1\n", "meta.yml")
    os.symlink("meta.yml", tmp_path / ".binder.yaml")
    assert find_binder_yml(tmp_path) == PurePosixPath(".binder.yaml")


def test_find_refuses_a_link_out_of_the_repository(tmp_path: Path) -> None:
    outside = write(tmp_path, "port: 1\n", "outside.yml")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    os.symlink(outside, checkout / ".binder.yml")
    with pytest.raises(BuildFailure, match=r"^\.binder\.yml is a link that leads outside "
                                           "the repository"):
        find_binder_yml(checkout)


# hostile values


@pytest.mark.parametrize(("text", "field", "reason"), [
    ("limits: {memory: 99999999999999999999T}\n", "limits.memory", "must be a size"),
    ("limits: {memory: 100T}\n", "limits.memory", "must be at most 64G on this farm"),
    ("limits: {cpu: 1e300}\n", "limits.cpu", "must be at most 64 on this farm"),
    ("limits: {cpu: '1e300'}\n", "limits.cpu", "must be at most 64 on this farm"),
    ("hardware: {privileged: true}\n", "hardware.privileged", "Unknown field"),
    ("hardware: {gpu: 1000}\n", "hardware.gpu", ""),
    ("hardware: {gpu: true}\n", "hardware.gpu", ""),
    ("$gt: ''\n", "$gt", "Unknown field"),
    ("limits: {'$gt': ''}\n", "limits.$gt", "Unknown field"),
    ("services: [{name: db, params: {'$where': x}}]\n", "services.0.params.$where.key",
     "must be a name"),
    ("services: [{name: db, params: {a.b: x}}]\n", "services.0.params.a.b.key", "must be a name"),
    ("services: [{name: db, params: {a: [1, 2]}}]\n", "services.0.params.a.value",
     "must be text, a number"),
    ("services: [{name: db, params: {a: " + "x" * 300 + "}}]\n", "services.0.params.a.value",
     "must be at most 200"),
    ("services: [{name: 'a b'}]\n", "services.0.name", "must be a name"),
    ("services: [" + ", ".join(["{name: s}"] * 11) + "]\n", "services", ""),
    ("command: 'jupyter lab \"unclosed'\n", "command", "cannot be split into words"),
    ("command: '   '\n", "command", "names no program"),
])
def test_hostile_values_are_refused_by_name(tmp_path: Path, text: str, field: str,
                                            reason: str) -> None:
    with pytest.raises(BuildFailure) as caught:
        load_binder_yml(write(tmp_path, text))
    assert f"{field}: {reason}" in caught.value.message


def test_custom_ceilings_apply(tmp_path: Path) -> None:
    from workers.binder_yml import Ceilings

    path = write(tmp_path, "limits: {memory: 8G, cpu: 4}\n")
    assert load_binder_yml(path)["limits"] == {"memory": "8G", "cpu": 4}
    with pytest.raises(BuildFailure, match="limits.memory: must be at most 4G"):
        load_binder_yml(path, Ceilings(memory_bytes=4 * 1024**3, cpu=2))


def test_aliases_are_refused_before_anything_expands(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8))
    with pytest.raises(BuildFailure, match=r"^\.binder\.yml \(line 4\): YAML anchors"):
        load_binder_yml(write(tmp_path, "services:\n  - name: x\n    params:\n" + bomb))


def test_many_unknown_keys_give_a_bounded_message(tmp_path: Path) -> None:
    text = "".join(f"k{i}: 1\n" for i in range(500))
    with pytest.raises(BuildFailure) as caught:
        load_binder_yml(write(tmp_path, text))
    assert "and 490 more" in caught.value.message and len(caught.value.message) < 1000


def test_an_oversized_file_is_not_read(tmp_path: Path) -> None:
    with pytest.raises(BuildFailure) as caught:
        load_binder_yml(write(tmp_path, "# " + "x" * 70_000 + "\n"))
    assert caught.value.message == (".binder.yml is 68 KiB; this farm reads config files of at "
                                    "most 64 KiB.")
    # what to do about its size, not about YAML syntax
    assert caught.value.suggestions == [cap_for(".binder.yml").advice.format(name=".binder.yml")]


@pytest.mark.parametrize(("size", "written"), [
    (64 * 1024**3, "64G"), (1536 * 1024**2, "1536M"), (2 * 1024**4, "2T"), (1000, "1000"),
    (4096, "4K")])
def test_sizes_are_written_as_people_write_them(size: int, written: str) -> None:
    assert format_size(size) == written
    assert parse_size(written) == size
