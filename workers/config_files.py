"""A repository's config files, each read within its cap.

Every config file the farm reads to build (requirements.txt and the files
it pulls in, apt.txt, runtime.txt, a Dockerfile, postBuild, environment.yml,
.binder.yml, .dockerignore ...) is read here, within the cap of its kind
(``CAPS``, found by the file's name): a gigabyte of one repeated line packs
into a few kilobytes of a repository. The size is looked up before the file
is opened, and no more than the cap and one byte is ever read, so a file
over its cap is refused unread with a ``BuildFailure`` naming it, its size
and the cap, and saying what to do instead.

Kept apart from ``workers.buildpacks`` so that modules the buildpacks
import (``workers.package_index``) can read files too. The reading itself is
``workers.repo_yaml.read_repo_file``, which the conda script also runs
inside the build (it gets its cap from the worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from common.errors import BuildFailure
from workers.repo_yaml import RepoYamlError, check_repo_file_size, read_repo_file

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Cap:
    """The most of one kind of config file the farm reads, and what a user whose
    file is larger should do (``{name}`` stands for the file)."""

    #: the kind's file names (patterns on a file's own name)
    names: tuple[str, ...]
    max_bytes: int
    advice: str


#: Each kind of config file with its cap; a file gets the first kind that names it.
CAPS = (
    # YAML is composed into a tree in the worker's memory, many times the file's
    # size; a real environment, even a full `conda env export`, is tens of KiB.
    Cap(("environment.yml",), 512 * KIB,
        "List the packages the environment needs (`conda env export --from-history`, not a "
        "full export) and keep data out of {name}."),
    # A handful of short keys of template metadata (workers/binder_yml.py): a real
    # one is a few hundred bytes, and its YAML tree is built in memory too.
    Cap((".binder.yml", ".binder.yaml", "binder.yml"), 64 * KIB,
        "Keep {name} to its few keys (limits, hardware, services, port, command, timeout); "
        "put data in other files."),
    # Every pattern is matched against every path of the repository when the
    # context is packed (and by the engine for <Dockerfile>.dockerignore), so the
    # work grows with lines times files.
    Cap((".dockerignore", ".containerignore", "*.dockerignore"), 256 * KIB,
        "Write folders and wildcards (`data/`, `*.csv`) in {name} rather than a line per "
        "file."),
    # Every other config file: requirements files, apt.txt, runtime.txt, Pipfile,
    # pyproject.toml, DESCRIPTION, install.R, postBuild, start, a Dockerfile. Text
    # that is decoded and split into lines whole; long lists of pins or packages
    # stay far under a MiB.
    Cap(("*",), 1 * MIB,
        "Keep {name} to what the build needs: move data and generated content out of it, "
        "into files of their own."),
)


def cap_for(path: str | PurePosixPath) -> Cap:
    """The cap of the config file ``path`` (by the file's own name)."""
    name = PurePosixPath(path).name
    return next(cap for cap in CAPS if any(fnmatchcase(name, each) for each in cap.names))


def _too_large(path: PurePosixPath, exc: RepoYamlError) -> BuildFailure:
    return BuildFailure(str(exc), suggestions=[cap_for(path).advice.format(name=path)])


def check_config_size(checkout: Path, path: PurePosixPath) -> None:
    """``BuildFailure`` when the config file ``path`` is over its cap (without reading
    it: for files another program reads, such as ``<Dockerfile>.dockerignore``)."""
    try:
        check_repo_file_size(checkout / path, str(path), cap_for(path).max_bytes)
    except RepoYamlError as exc:
        raise _too_large(path, exc) from None


def read_config_bytes(checkout: Path, path: PurePosixPath) -> bytes:
    """The bytes of the repository's config file ``path``, refused (unread) above its
    cap with a ``BuildFailure`` naming it."""
    try:
        return read_repo_file(checkout / path, str(path), cap_for(path).max_bytes)
    except RepoYamlError as exc:
        raise _too_large(path, exc) from None


def read_config_text(checkout: Path, path: PurePosixPath, errors: str = "replace") -> str:
    """The text of the config file ``path`` (UTF-8, newlines as ``\\n``), within the cap
    of ``read_config_bytes``."""
    # utf-8-sig: without the byte-order mark a Windows editor may write first, which Docker
    # drops from .dockerignore and Dockerfiles, and which would hide a runtime.txt's line
    text = read_config_bytes(checkout, path).decode("utf-8-sig", errors)
    # as a file opened in text mode reads it (universal newlines)
    return text.replace("\r\n", "\n").replace("\r", "\n")


__all__ = ["CAPS", "Cap", "cap_for", "check_config_size", "read_config_bytes",
           "read_config_text"]
