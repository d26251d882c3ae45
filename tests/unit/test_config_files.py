"""``workers/config_files.py``: one table of caps, one refusal for every config file over its cap.

How a file is read within its cap (stat first, never more than the cap and a
byte) is tested with the reader itself, in ``tests/unit/test_repo_yaml.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from common.config import load_config
from common.errors import BuildFailure
from workers.binder_yml import FILE_NAMES as BINDER_YML_NAMES
from workers.binder_yml import load_binder_yml
from workers.buildpacks import check, detect
from workers.config_files import CAPS, KIB, MIB, cap_for
from workers.dockerignore import IGNORE_FILE_NAMES, check_ignore_files, ignore_patterns

CONFIG = load_config(environ={})


@pytest.mark.parametrize(("name", "cap"), [
    ("environment.yml", 512 * KIB), ("binder/environment.yml", 512 * KIB),
    (".binder.yml", 64 * KIB), (".binder.yaml", 64 * KIB), ("binder.yml", 64 * KIB),
    (".dockerignore", 256 * KIB), (".containerignore", 256 * KIB),
    ("binder/Dockerfile.dockerignore", 256 * KIB),
    ("requirements.txt", MIB), ("binder/apt.txt", MIB), ("Dockerfile", MIB),
    ("postBuild", MIB), ("reqs/more.txt", MIB),
])
def test_each_kind_of_config_file_has_its_cap(name: str, cap: int) -> None:
    assert cap_for(name).max_bytes == cap
    assert cap_for(PurePosixPath(name)) == cap_for(name)


def test_the_names_the_readers_look_for_have_their_kinds_cap() -> None:
    # the table names them again: a name added to a reader must get the same cap
    assert {cap_for(name) for name in BINDER_YML_NAMES} == {cap_for(".binder.yml")}
    assert {cap_for(name) for name in IGNORE_FILE_NAMES} == {cap_for("Dockerfile.dockerignore")}


def test_every_cap_says_what_to_do_about_the_file() -> None:
    assert CAPS[-1].names == ("*",)  # every config file has a cap
    for cap in CAPS:
        assert "{name}" in cap.advice and cap.advice.endswith(".")


def detect_reads(checkout: Path) -> None:
    detection = detect(checkout, CONFIG)
    check(detection, checkout, CONFIG)


#: Each kind of config file, and how the farm reads it at detect.
READERS: dict[str, Callable[[Path], object]] = {
    "apt.txt": detect_reads,
    "binder/apt.txt": detect_reads,
    "requirements.txt": detect_reads,
    "environment.yml": detect_reads,
    ".binder.yml": lambda checkout: load_binder_yml(checkout / ".binder.yml"),
    "binder.yml": lambda checkout: load_binder_yml(checkout / "binder.yml"),
    ".dockerignore": ignore_patterns,
    ".containerignore": ignore_patterns,
    # not read by the farm, only checked: the engine reads it
    "Dockerfile.dockerignore": lambda checkout: check_ignore_files(checkout,
                                                                   PurePosixPath("Dockerfile")),
}


def write_comment(path: Path, size: int) -> None:
    """A file of ``size`` bytes that every kind reads as empty (one comment line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#" + b"x" * (size - 2) + b"\n")


@pytest.mark.parametrize("name", READERS)
def test_every_reader_reads_a_file_at_its_cap(tmp_path: Path, name: str) -> None:
    write_comment(tmp_path / name, cap_for(name).max_bytes)
    READERS[name](tmp_path)


@pytest.mark.parametrize("name", READERS)
def test_every_reader_refuses_a_file_over_its_cap_the_same_way(tmp_path: Path,
                                                              name: str) -> None:
    cap = cap_for(name)
    write_comment(tmp_path / name, cap.max_bytes + 1)
    with pytest.raises(BuildFailure) as caught:
        READERS[name](tmp_path)
    shown = {MIB: "1.0 MiB", 512 * KIB: "512 KiB", 256 * KIB: "256 KiB",
             64 * KIB: "64 KiB"}[cap.max_bytes]
    assert caught.value.message == (f"{name} is {cap.max_bytes + 1} bytes; this farm reads "
                                    f"config files of at most {cap.max_bytes} bytes ({shown}).")
    assert caught.value.suggestions == [cap.advice.format(name=name)]


def test_a_byte_order_mark_is_read_as_the_tools_read_it(tmp_path: Path) -> None:
    """Windows editors may begin a UTF-8 file with a byte-order mark, which Docker drops from
    .dockerignore and Dockerfiles: the farm reads every config file without it too."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    bom = "\ufeff".encode()
    (checkout / "runtime.txt").write_bytes(bom + b"python-3.12\n")
    (checkout / "apt.txt").write_bytes(bom + b"cowsay\n")
    (checkout / "requirements.txt").write_bytes(b"")
    (checkout / ".dockerignore").write_bytes(bom + b"secret.txt\n")
    config = CONFIG.replace(conda_channels=("http://127.0.0.1:8/c",))
    detection = detect(checkout, config)
    check(detection, checkout, config)
    lines = detection.buildpack.render(detection.inputs(checkout, config)).splitlines()
    assert any('"--python", "3.12"' in line for line in lines)
    assert any(line.startswith("RUN") and " cowsay" in line for line in lines)
    assert ignore_patterns(checkout) == ["secret.txt"]
