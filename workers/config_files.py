"""A repository's config files, read within one cap.

Every config file the farm reads to build (requirements.txt and the files
it pulls in, apt.txt, runtime.txt, a Dockerfile, postBuild ...) is read
here, refused unread above ``MAX_CONFIG_BYTES`` with one sentence naming it:
a gigabyte of one repeated line packs into a few kilobytes of a repository.
YAML files have their own, smaller cap (``workers/repo_yaml.py``).

Kept apart from ``workers.buildpacks`` so that modules the buildpacks
import (``workers.package_index``) can read files too.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from common.errors import BuildFailure
from workers.repo_yaml import RepoYamlError, read_repo_file

MAX_CONFIG_BYTES = 1024 * 1024


def read_config_bytes(checkout: Path, path: PurePosixPath) -> bytes:
    """The bytes of the repository's config file ``path``, refused (unread) above
    ``MAX_CONFIG_BYTES`` with a ``BuildFailure`` naming it."""
    try:
        return read_repo_file(checkout / path, str(path), MAX_CONFIG_BYTES)
    except RepoYamlError as exc:
        raise BuildFailure(str(exc), suggestions=[f"Shorten {path}."]) from None


def read_config_text(checkout: Path, path: PurePosixPath, errors: str = "replace") -> str:
    """The text of the config file ``path`` (UTF-8, newlines as ``\\n``), within the cap
    of ``read_config_bytes``."""
    text = read_config_bytes(checkout, path).decode("utf-8", errors)
    # as a file opened in text mode reads it (universal newlines)
    return text.replace("\r\n", "\n").replace("\r", "\n")


__all__ = ["MAX_CONFIG_BYTES", "read_config_bytes", "read_config_text"]
