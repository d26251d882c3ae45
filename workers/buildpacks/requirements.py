"""``requirements.txt``: installed into the user's environment with uv or pip."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from common.config import Config
from common.errors import BuildFailure
from workers.buildpacks.base import ENV_PYTHON, BuildInputs, BuildPack, Install, staged
from workers.buildpacks.installers import python_install
from workers.config_files import read_config_bytes
from workers.package_index import (
    check_requirements_file,
    options_uv_misreads,
    requirements_readings,
)

# Lines that refer to other files of the repository (``-r other.txt``,
# ``-e .``, local paths) need the whole repository before the install runs.
_LOCAL_REFERENCE = re.compile(
    r"^\s*(-r|--requirement|-c|--constraint|-e|--editable|\.|/|~|file:)")
_FIND_LINKS = re.compile(r"^\s*(-f|--find-links)[\s=]+(\S+)")


def needs_repository(line: str, folders: tuple[Path, ...] = ()) -> bool:
    """True when a requirements line refers to files of the repository.

    ``folders`` are where a bare name is looked for (the repository's root, where the
    install runs, and the requirements file's folder): a line such as
    ``pkg-1.0-py3-none-any.whl`` that names a file there is a local path to pip.
    """
    text = line.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return False
    if _LOCAL_REFERENCE.match(text):
        return True
    find_links = _FIND_LINKS.match(text)
    if find_links:
        return "://" not in find_links.group(2)
    first = text.split()[0].split(";", 1)[0]
    if "/" in first and "://" not in first:  # a relative path such as wheels/x.whl
        return True
    return first not in ("", ".", "..") and any(
        os.path.lexists(folder / first) for folder in folders)


class RequirementsBuildPack(BuildPack):
    id = "requirements.txt"
    config_file = "requirements.txt"

    def check(self, inputs: BuildInputs) -> None:
        """The file (and those it pulls in with -r/-c) may not name a package index."""
        assert inputs.config_path is not None
        check_requirements_file(inputs.checkout, str(inputs.config_path))

    def pulled_in(self, inputs: BuildInputs) -> list[PurePosixPath]:
        assert inputs.config_path is not None
        opened: list[PurePosixPath] = []
        check_requirements_file(inputs.checkout, str(inputs.config_path), opened)
        return opened

    def install(self, inputs: BuildInputs) -> Install:
        assert inputs.config_path is not None
        # every reading an installer may make of it (a UTF-16 file from PowerShell ...)
        readings = requirements_readings(read_config_bytes(inputs.checkout, inputs.config_path))
        folders = (inputs.checkout, inputs.checkout / inputs.config_path.parent)
        config, what = self._installer(inputs)
        if any(needs_repository(line, folders)
               for text in readings for line in text.splitlines()):
            return Install(after_repo=[python_install(
                config, ENV_PYTHON, ["-r", str(inputs.config_path)], what)])
        return Install(before_repo=[
            self.stage(inputs, inputs.config_path, "requirements.txt"),
            python_install(config, ENV_PYTHON, ["-r", staged("requirements.txt")], what)])

    def _installer(self, inputs: BuildInputs) -> tuple[Config, str]:
        """The farm's installer, or pip for files written with options only pip reads
        (written for repo2docker, which installs with pip); what the log calls the step."""
        assert inputs.config_path is not None
        try:
            paths = self.pulled_in(inputs)
        except BuildFailure:  # a refused file fails the build's check, before it renders
            paths = [inputs.config_path]
        texts = [text for path in paths
                 for text in requirements_readings(read_config_bytes(inputs.checkout, path))]
        unread = options_uv_misreads(texts)
        if inputs.config.python_installer != "uv" or not unread:
            return inputs.config, "requirements.txt"
        named = ", ".join(unread[:3])
        return (inputs.config.replace(python_installer="pip"),
                f"requirements.txt (uv does not read {named} as pip does)")
