"""How generated Dockerfiles install packages: installers, the farm's index, caches.

Python requirements go through ``uv pip`` (``BINDER_PYTHON_INSTALLER=uv``,
the default) or ``pip``. Neither reads the other's configuration, so the
farm's index (``BINDER_PIP_INDEX_URL``) is passed to each explicitly, by
:func:`index_options`, the one place that spells those options.

A repository's ``postBuild`` gets the same index through pip's and uv's
environment variables (:func:`index_environment`), on its step alone.

Downloads are kept in BuildKit cache mounts shared by every build on a
host (``RUN --mount=type=cache,id=binder-...``): a second repository that
needs the same wheels, conda packages or Debian archives fetches none of
them again. The mounts belong to the image user where the step runs as
that user; uv copies from its cache rather than hard-linking, as a cache
mount is another file system. Their ids (``CACHE_ID_PREFIX``) are the farm's:
a repository's own Dockerfile may not mount them (``workers/buildpacks/dockerfile.py``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit

from common.config import Config

CACHE_ROOT = "/var/cache/binder"
#: How the ids of the farm's shared cache mounts begin.
CACHE_ID_PREFIX = "binder-"


def index_options(installer: str, index_url: str) -> list[str]:
    """Command-line options that make ``installer`` use ``index_url`` and only it."""
    if not index_url:
        return []
    options = ["--index-url", index_url]
    parts = urlsplit(index_url)
    if installer == "pip" and parts.scheme == "http" and parts.hostname:
        options += ["--trusted-host", parts.hostname]
    return options


def index_environment(index_url: str) -> dict[str, str]:
    """Environment variables that make a ``pip install`` or ``uv pip install`` a repository's
    script runs (``postBuild``) use ``index_url`` and only it, as :func:`index_options`
    does for the commands the farm writes. Set on that step alone: the image keeps no
    index, as a launched image may not reach the one the build used."""
    if not index_url:
        return {}
    environment = {"PIP_INDEX_URL": index_url, "UV_DEFAULT_INDEX": index_url}
    parts = urlsplit(index_url)
    if parts.scheme == "http" and parts.hostname:
        # pip refuses a plain-http index it is not told to trust; uv needs no such word
        environment["PIP_TRUSTED_HOST"] = parts.hostname
    return environment


def installer(config: Config) -> str:
    """``uv`` or ``pip`` (``BINDER_PYTHON_INSTALLER``; the configuration refuses others)."""
    return str(config.python_installer)


def cache_mount(kind: str, uid: int | None = None, sharing: str = "shared") -> str:
    """A BuildKit cache mount at ``/var/cache/binder/KIND``, shared by builds on a host."""
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    return (f"--mount=type=cache,id={CACHE_ID_PREFIX}{kind},target={CACHE_ROOT}/{kind}"
            f"{owner},sharing={sharing}")


def install_argv(config: Config, python: str) -> list[str]:
    """The install command for ``python``'s environment, without what to install."""
    index = index_options(installer(config), str(config.pip_index_url))
    # No configuration file a repository can place (pip.conf, uv.toml, [tool.uv]) and no
    # PIP_* variable may replace the farm's index: --isolated, --no-config.
    if installer(config) == "uv":
        return ["uv", "pip", "install", "--no-config", "--python", python, "--link-mode", "copy",
                "--cache-dir", f"{CACHE_ROOT}/uv", *index]
    return [python, "-m", "pip", "install", "--isolated", "--disable-pip-version-check",
            "--no-input", "--cache-dir", f"{CACHE_ROOT}/pip", *index]


def installer_label(config: Config) -> str:
    return "uv pip" if installer(config) == "uv" else "pip"


def python_cache_mount(config: Config) -> str:
    return cache_mount(installer(config), config.nb_uid)


def python_install(config: Config, python: str, args: Sequence[str], what: str) -> str:
    """A ``RUN`` line installing ``args`` (pip install arguments) into ``python``'s
    environment; it names the installer in the build log before it runs."""
    message = f"installing {what} with {installer_label(config)}"
    return (f"RUN {python_cache_mount(config)} echo {shlex.quote(message)} && "
            f"{shlex.join([*install_argv(config, python), *args])}")


def apt_install(packages: Sequence[str]) -> str:
    """A ``RUN`` line (as root) installing Debian ``packages`` (checked names), with the
    archives and package lists in host-wide caches."""
    mounts = (f"--mount=type=cache,id={CACHE_ID_PREFIX}apt-archives,"
              "target=/var/cache/apt/archives,sharing=locked "
              f"--mount=type=cache,id={CACHE_ID_PREFIX}apt-lists,target=/var/lib/apt/lists,"
              "sharing=locked")
    return (f"RUN {mounts} apt-get update -qq && apt-get install -y --no-install-recommends "
            f"-o APT::Keep-Downloaded-Packages=true {' '.join(packages)}")
