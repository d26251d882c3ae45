"""How a config file becomes a Dockerfile: the base class of every buildpack.

A buildpack is chosen by its ``config_file`` (the first present one, in the
order of the ``BINDER_CONFIG_ORDER`` setting) and renders a Dockerfile for
the build context that ``workers/docker_context.py`` assembles:

* generated Dockerfiles see the repository under ``repo/`` and any
  ``extra_files`` under ``.binder-build/``;
* a repository's own Dockerfile (``owns_context``) sees the repository as
  its context root, as ``docker build`` would.

Dependency layers come first: copy only the config file, install, then
copy the rest of the repository, so a code-only change reuses the layer.

To add a buildpack: subclass in its own module and add it to
``BUILDPACKS`` in ``workers/buildpacks/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from common.config import Config

HOME = "/home/main"
ENV_PREFIX = "/srv/env"
CONFIG_STAGING = "/tmp/binder"


@dataclass(frozen=True)
class BuildInputs:
    """What a buildpack renders from."""

    checkout: Path
    config_path: PurePosixPath | None  # relative to the checkout
    config: Config

    @property
    def base_image(self) -> str:
        return str(self.config.base_image_name)


class BuildPack(ABC):
    """One kind of repository configuration."""

    #: short id stored as the build's ``config`` when no file chose it
    id: str = "buildpack"
    #: file name that selects this buildpack; ``None`` for the default
    config_file: str | None = None
    #: True when the repository's own Dockerfile is built with its own context
    owns_context: bool = False

    @abstractmethod
    def render(self, inputs: BuildInputs) -> str:
        """The Dockerfile text."""

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        """Files added to the context under ``.binder-build/``."""
        return {}

    def check(self, inputs: BuildInputs) -> None:  # noqa: B027 - optional hook
        """Raise ``BuildFailure`` when the config cannot be built (before Docker runs)."""

    def notices(self, inputs: BuildInputs) -> list[str]:
        """Lines for the build log at detect, e.g. that the farm's package sources replace
        the ones the config file names (``workers.package_index.sources_replaced``)."""
        return []

    # Shared pieces of generated Dockerfiles.

    @staticmethod
    def preamble(inputs: BuildInputs) -> list[str]:
        return [f"FROM {inputs.base_image}", "USER root",
                f"LABEL org.binder-build.config={inputs.config_path or 'none'}"]

    @staticmethod
    def stage_config(inputs: BuildInputs, name: str) -> str:
        assert inputs.config_path is not None
        return f"COPY repo/{inputs.config_path} {CONFIG_STAGING}/{name}"

    @staticmethod
    def finish(extra_env: str | None = None) -> list[str]:
        lines = [f"COPY --chown=1000:1000 repo/ {HOME}/"]
        if extra_env:
            lines.append(extra_env)
        lines += ["USER main", f"WORKDIR {HOME}", "EXPOSE 8888"]
        return lines

    @staticmethod
    def pip_options(inputs: BuildInputs) -> str:
        """The farm's index for pip; ``--isolated`` so that no pip.conf the repository
        puts in ``$HOME`` (``.config/pip/pip.conf``) and no ``PIP_*`` variable replaces it."""
        url = inputs.config.pip_index_url
        if not url:
            return "--isolated"
        options = f"--isolated --index-url {url}"
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.hostname:
            options += f" --trusted-host {parts.hostname}"
        return options

    @staticmethod
    def register_kernel(python: str) -> str:
        """Make ``python`` the notebook's default kernel."""
        return (f"{python} -m ipykernel install --prefix /usr/local --name python3 "
                "--display-name 'Python 3'")
