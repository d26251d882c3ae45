"""Environment files installed together, as repo2docker's Python and R buildpacks do.

repo2docker's R buildpack is its Python buildpack with R: with R chosen (a
``DESCRIPTION``), it installs ``requirements.txt`` too, and with either it
installs the Python package at the repository's root (``setup.py`` or a
``pyproject.toml``). Here the environment file chosen by precedence comes
first and those beside it at the root follow (``BESIDE`` in
``workers/buildpacks/__init__.py`` says which); each is checked, logged and
installed by its own buildpack.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import PurePosixPath

from workers.buildpacks.base import BuildInputs, BuildPack, Install


class BesideBuildPack(BuildPack):
    """The chosen environment buildpack, with the environment files installed after it."""

    def __init__(self, chosen: BuildPack,
                 beside: Sequence[tuple[BuildPack, PurePosixPath]]) -> None:
        self.chosen = chosen
        self.beside = list(beside)
        self.id = chosen.id
        self.config_file = chosen.config_file
        self.brings_python = chosen.brings_python

    def _each(self, inputs: BuildInputs) -> Iterator[tuple[BuildPack, BuildInputs]]:
        yield self.chosen, inputs
        for pack, path in self.beside:
            yield pack, replace(inputs, config_path=path)

    def check(self, inputs: BuildInputs) -> None:
        for pack, each in self._each(inputs):
            pack.check(each)

    def pulled_in(self, inputs: BuildInputs) -> list[PurePosixPath]:
        return list(dict.fromkeys(path for pack, each in self._each(inputs)
                                  for path in pack.pulled_in(each)))

    def notices(self, inputs: BuildInputs) -> list[str]:
        return [line for pack, each in self._each(inputs) for line in pack.notices(each)]

    def install(self, inputs: BuildInputs) -> Install:
        """The chosen environment's install, then each file's beside it, in order."""
        result = Install()
        for pack, each in self._each(inputs):
            install = pack.install(each)
            result.before_repo += install.before_repo
            result.after_repo += install.after_repo
            result.files.update(install.files)
            result.python = result.python or install.python
            result.own_python = result.own_python or install.own_python
            result.needs_r = result.needs_r or install.needs_r
        return result
