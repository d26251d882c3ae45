"""``setup.py``, or ``pyproject.toml`` with a ``[build-system]`` or ``[project]``: the
repository is a Python package, installed with ``pip install .`` (or uv's equivalent)
from ``REPO_DIR``.

Beside ``requirements.txt`` or ``DESCRIPTION`` at the repository's root, the
package is installed after them, as repo2docker does
(``workers/buildpacks/beside.py``).
"""

from __future__ import annotations

import tomllib
from pathlib import PurePosixPath

from common.config import Config
from workers.buildpacks.base import ENV_PYTHON, BuildInputs, BuildPack, Install
from workers.buildpacks.installers import python_install

#: The files that make the repository an installable Python package, by precedence.
PACKAGE_FILES = ("setup.py", "pyproject.toml")


def install_package(config: Config, path: PurePosixPath) -> str:
    """The ``RUN`` line installing the package whose ``setup.py`` or ``pyproject.toml`` is
    ``path`` (from its folder: the root, or binder/), once the repository is copied."""
    folder = str(path.parent)
    return python_install(config, ENV_PYTHON, [folder], f"the package in {folder} ({path.name})")


class SetupPyBuildPack(BuildPack):
    id = "setup.py"
    config_file = "setup.py"

    def install(self, inputs: BuildInputs) -> Install:
        assert inputs.config_path is not None
        return Install(after_repo=[install_package(inputs.config, inputs.config_path)])


class PyprojectBuildPack(SetupPyBuildPack):
    id = "pyproject.toml"
    config_file = "pyproject.toml"

    def applies(self, inputs: BuildInputs) -> bool:
        """Only a pyproject.toml that says how to build it, or describes a project (which
        pip and uv build with setuptools when it names no backend), makes an installable
        package: one holding only tools' settings (``[tool.ruff]``) does not."""
        try:
            data = tomllib.loads(inputs.read())
        except (tomllib.TOMLDecodeError, RecursionError):  # nested deeper than it recurses
            return False
        return isinstance(data.get("build-system"), dict) or isinstance(data.get("project"), dict)
