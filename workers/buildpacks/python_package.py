"""``setup.py`` or ``pyproject.toml`` with a ``[build-system]``: the repository is a
Python package, installed with ``pip install .`` (or uv's equivalent) from
``REPO_DIR``."""

from __future__ import annotations

import tomllib

from workers.buildpacks.base import ENV_PYTHON, BuildInputs, BuildPack, Install
from workers.buildpacks.installers import python_install


class SetupPyBuildPack(BuildPack):
    id = "setup.py"
    config_file = "setup.py"

    def install(self, inputs: BuildInputs) -> Install:
        # The package's directory is the config file's: the root, or binder/.
        assert inputs.config_path is not None
        folder = str(inputs.config_path.parent)
        return Install(after_repo=[python_install(inputs.config, ENV_PYTHON, [folder],
                                                  f"the package in {folder} ({self.id})")])


class PyprojectBuildPack(SetupPyBuildPack):
    id = "pyproject.toml"
    config_file = "pyproject.toml"

    def applies(self, inputs: BuildInputs) -> bool:
        """Only a pyproject.toml that says how to build it makes an installable package."""
        try:
            data = tomllib.loads(inputs.read())
        except (tomllib.TOMLDecodeError, RecursionError):  # nested deeper than it recurses
            return False
        return isinstance(data.get("build-system"), dict)
