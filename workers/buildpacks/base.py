"""How repository files become a Dockerfile: the base class of every buildpack.

One *environment* buildpack is chosen by its file (the first present one,
in the order of ``BINDER_CONFIG_ORDER``); ``apt.txt``, ``runtime.txt``,
``install.R``, ``postBuild`` and ``start`` are composed on top of it by
``workers/buildpacks/compose.py``, except on a repository's own Dockerfile.

* generated Dockerfiles see the repository under ``repo/`` and generated
  files under ``.binder-build/``;
* a repository's own Dockerfile (``owns_context``) sees the repository as
  its context root, as ``docker build`` would.

An environment buildpack says how to install its environment
(:meth:`BuildPack.install`): steps that run as the image user before the
repository is copied (only the files they name are staged, so a code-only
change reuses the layer), and steps that need the whole repository.

To add a buildpack: subclass in its own module and add it to
``BUILDPACKS`` in ``workers/buildpacks/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from common.config import Config
from workers.config_files import read_config_text

#: The user's environment: a venv over the system Python in the base image,
#: a conda prefix when a conda environment or another Python is asked for.
ENV_PREFIX = "/srv/env"
ENV_PYTHON = f"{ENV_PREFIX}/bin/python"
#: Where single config files are staged before the repository is copied.
CONFIG_STAGING = "/tmp/binder"
#: Where generated helper files land in the image.
HELPERS = "/usr/local/share/binder-build"


@dataclass(frozen=True)
class BuildInputs:
    """What a buildpack renders from."""

    checkout: Path
    config_path: PurePosixPath | None  # relative to the checkout
    config: Config
    #: the files composed on top (``apt.txt``, ``runtime.txt``, ``postBuild`` ...) by name
    extras: Mapping[str, PurePosixPath] = field(default_factory=dict)

    @property
    def base_image(self) -> str:
        return str(self.config.base_image_name)

    @property
    def build_files(self) -> list[PurePosixPath]:
        """The repository's files the build is made from: the environment file and the
        files composed on top (repository paths)."""
        files = [self.config_path] if self.config_path is not None else []
        return files + [path for path in self.extras.values() if path not in files]

    def read(self, path: PurePosixPath | None = None) -> str:
        target = path or self.config_path
        assert target is not None
        return read_config_text(self.checkout, target)


@dataclass
class Install:
    """How an environment is installed: Dockerfile lines, and the files they need."""

    #: lines run as the image user before the repository is copied
    before_repo: list[str] = field(default_factory=list)
    #: lines run as the image user in ``REPO_DIR`` once the repository is there
    after_repo: list[str] = field(default_factory=list)
    #: generated files for the context, under ``.binder-build/``
    files: dict[str, bytes] = field(default_factory=dict)
    #: a Python version (``X.Y``) the environment asks for (Pipfile's ``python_version``)
    python: str | None = None
    #: True when the environment brings its own Python (a conda environment)
    own_python: bool = False
    #: True when the environment is R's (``DESCRIPTION``)
    needs_r: bool = False


class BuildPack:
    """One kind of environment file."""

    #: short id stored as the build's ``buildpack``
    id: str = "buildpack"
    #: file name that selects this buildpack; ``None`` for the default
    config_file: str | None = None
    #: True when the repository's own Dockerfile is built with its own context
    owns_context: bool = False
    #: True when the environment brings its own Python (runtime.txt's python-X.Y does not apply)
    brings_python: bool = False

    def applies(self, inputs: BuildInputs) -> bool:
        """False when the file is present but does not ask for this buildpack."""
        return True

    def check(self, inputs: BuildInputs) -> None:  # noqa: B027 - optional hook
        """Raise ``BuildFailure`` when the config cannot be built (before Docker runs)."""

    def pulled_in(self, inputs: BuildInputs) -> list[PurePosixPath]:
        """Repository files the build files name, which the build reads from the copied
        repository (``-r`` files of a requirements file): copied even when ignored."""
        return []

    def notices(self, inputs: BuildInputs) -> list[str]:
        """Lines for the build log at detect, e.g. that the farm's package sources replace
        the ones the config file names (``workers.package_index.sources_replaced``)."""
        return []

    def install(self, inputs: BuildInputs) -> Install:
        """How the environment is installed (generated Dockerfiles)."""
        return Install()

    def render(self, inputs: BuildInputs) -> str:
        """The Dockerfile text."""
        from workers.buildpacks.compose import compose

        return compose(self, inputs)

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        """Files added to the context under ``.binder-build/``."""
        from workers.buildpacks.compose import context_files

        return context_files(self, inputs)

    @staticmethod
    def stage(inputs: BuildInputs, path: PurePosixPath, name: str) -> str:
        """The COPY line staging one repository file at ``/tmp/binder/NAME``."""
        uid = inputs.config.nb_uid
        return f"COPY --chown={uid}:{uid} repo/{path} {CONFIG_STAGING}/{name}"


def staged(name: str) -> str:
    return f"{CONFIG_STAGING}/{name}"
