"""``Dockerfile``: the repository's own, built with the repository as context.

A ``Containerfile`` (Podman's name for the same file) is built the same way,
with every check below, when there is no Dockerfile (``CONTAINERFILE``).

It gets ``NB_USER``, ``NB_UID`` and ``REPO_DIR`` as build arguments, as
BinderHub passes them; nothing is composed on top of it. ``FROM
binder-root`` (or ``binder-root:latest``) names the farm's Debian root in
its registry, ``REGISTRY/binder-root:latest``, unless the Dockerfile has a
stage of that name; the build uses the Dockerfile with that full name.
From the farm's registry and from loopback or private ones, only the
farm's own images may come (``farm_images``, ``workers/image_policy.py``).
Off the host's network, an ``ADD`` of a URL is refused: the engine would
download it from the host's network (``check_downloads``). A ``RUN --mount``
of one of the farm's shared caches is refused (``check_cache_mounts``): what
a build leaves there, other repositories' builds would install. A ``#
syntax`` line naming Docker's own frontend is built with the engine's
built-in one; any other frontend is refused (``workers/dockerfile_frontend.py``).
A ``RUN --mount`` of an SSH agent or a secret gets none: the farm has no
client to pass them; a required one is refused (``check_client_mounts``),
an optional one named in the log.
"""

from __future__ import annotations

import re

from common.config import Config
from common.errors import BuildFailure
from workers.buildpacks.base import BuildInputs, BuildPack
from workers.buildpacks.installers import CACHE_ID_PREFIX
from workers.config_files import read_config_text
from workers.dockerfile_frontend import check_frontend, with_builtin_frontend
from workers.dockerfile_parser import DockerfileError
from workers.dockerfile_parser.downloads import downloaded_sources
from workers.dockerfile_parser.mounts import ClientMount, cache_ids, client_mounts
from workers.dockerignore import check_ignore_files
from workers.image_policy import FarmImages, check_dockerfile
from workers.repo_yaml import shorten

ROOT_SHORT_NAME = "binder-root"
# Blanks before FROM stay on its line ([^\S\n]): a \s* there spans every blank line after
# each line start, so a megabyte of blank lines was read again from each of them.
_FROM_ROOT = re.compile(r"^([^\S\n]*FROM\s+(?:--\S+\s+)*)binder-root(?::latest)?(?=\s|$)",
                        re.IGNORECASE | re.MULTILINE)
_ROOT_STAGE = re.compile(r"^[^\S\n]*FROM\s.*\sAS\s+binder-root\s*$",
                         re.IGNORECASE | re.MULTILINE)


def with_farm_root(text: str, root_image: str) -> str:
    """``text`` with each ``FROM binder-root`` naming ``root_image`` instead."""
    if _ROOT_STAGE.search(text):
        return text
    return _FROM_ROOT.sub(lambda match: match.group(1) + root_image, text)


def farm_images(config: Config) -> FarmImages:
    """The farm's registry and its own images a repository Dockerfile may build on."""
    return FarmImages(config.registry, (config.base_image_name, config.root_image_name))


def check_downloads(text: str, network: str, file_name: str = "Dockerfile") -> None:
    """``BuildFailure`` for an ``ADD`` of a URL when builds run on a network other than
    the host's: the engine downloads it itself, from the host's network, where the
    farm's services and a cloud's metadata address are (``BINDER_BUILD_NETWORK``
    does not reach it)."""
    if network == "host":
        return  # a build step reaches whatever the engine's download would
    try:
        downloads = downloaded_sources(text)
    except DockerfileError as exc:
        raise BuildFailure(str(exc)) from None
    if downloads:
        download = downloads[0]
        raise BuildFailure(
            f"The {file_name}'s {download.how} on line {download.line} downloads "
            f"{shorten(download.url)}; the Docker engine would fetch it from its own network, "
            f"not the builds' ({network}), so this farm does not allow it.",
            suggestions=["Download it in a RUN step (curl, wget), which runs on the "
                         "builds' network, or commit the file."])


def check_cache_mounts(text: str, file_name: str = "Dockerfile") -> None:
    """``BuildFailure`` for a ``RUN --mount`` naming one of the farm's shared caches
    (``CACHE_ID_PREFIX``): the generated builds of every repository on the host install
    from them, so a repository's own steps must not write there."""
    try:
        mounts = cache_ids(text)
    except DockerfileError as exc:
        raise BuildFailure(str(exc)) from None
    for mount in mounts:
        if mount.cache_id.lower().startswith(CACHE_ID_PREFIX):
            raise BuildFailure(
                f"The {file_name}'s {mount.how} on line {mount.line} mounts the cache "
                f"{shorten(mount.cache_id)}, which this farm's own builds share; a "
                "repository's Dockerfile may not use it.",
                suggestions=[f"Give the cache an id of your own (not starting with "
                             f"{CACHE_ID_PREFIX}), or leave the id out."])


def _what(mount: ClientMount) -> str:
    return "an SSH agent" if mount.kind == "ssh" else f"the secret {shorten(mount.name)}"


def check_client_mounts(text: str, file_name: str = "Dockerfile") -> None:
    """``BuildFailure`` for a ``RUN --mount`` that requires an SSH agent or a secret:
    ``docker build`` takes them from its client (``--ssh``, ``--secret``), and this
    farm passes builds none, so the engine would stop the step."""
    for mount in client_mounts(text):
        if mount.required:
            raise BuildFailure(
                f"The {file_name}'s {mount.how} --mount on line {mount.line} requires "
                f"{_what(mount)}, which this farm cannot pass: builds get no "
                f"{'SSH agent' if mount.kind == 'ssh' else 'secrets'}.",
                suggestions=["Leave required=true out (the step then runs without it), or "
                             "have the step download over https what it needs; never commit "
                             "a credential."])


#: Podman's name for a Dockerfile; same syntax, so the same buildpack builds it.
CONTAINERFILE = "Containerfile"


class DockerfileBuildPack(BuildPack):
    """The repository's own Dockerfile, under ``config_file``: ``Dockerfile`` or
    ``CONTAINERFILE``. The id stays ``Dockerfile`` for both: what the farm decides by
    buildpack (a verification never reused, ``workers/verification_reuse.py``) holds
    for either name."""

    id = "Dockerfile"
    config_file = "Dockerfile"
    owns_context = True

    def __init__(self, config_file: str = "Dockerfile") -> None:
        self.config_file = config_file

    def _text(self, inputs: BuildInputs) -> str:
        assert inputs.config_path is not None
        # surrogateescape keeps stray bytes as they are, as Docker's parser sees them
        return read_config_text(inputs.checkout, inputs.config_path, "surrogateescape")

    def check(self, inputs: BuildInputs) -> None:
        """Every image the build could pull must be allowed (``workers/image_policy.py``);
        the ignore files must be files of the repository."""
        assert inputs.config_path is not None
        text = self.render(inputs)
        # Messages name the file as the repository does (Dockerfile or Containerfile).
        check_frontend(text, self.config_file)
        check_dockerfile(text, inputs.config.allowed_base_images, self.build_args(inputs.config),
                         farm_images(inputs.config), file_name=self.config_file)
        check_downloads(text, inputs.config.build_network, self.config_file)
        check_cache_mounts(text, self.config_file)
        check_client_mounts(text, self.config_file)
        check_ignore_files(inputs.checkout, inputs.config_path)

    def notices(self, inputs: BuildInputs) -> list[str]:
        text = self._text(inputs)
        root = inputs.config.root_image_name
        lines = []
        dropped = with_builtin_frontend(text).dropped
        if dropped is not None:
            lines.append(f"{inputs.config_path} line {dropped.line}: the build uses the Docker "
                         f"engine's built-in Dockerfile frontend, not {shorten(dropped.image)} "
                         "(this farm pulls no frontend); syntax newer than the engine's fails "
                         "to parse.")
        for mount in client_mounts(text):
            if mount.required:
                continue  # refused by check_client_mounts
            lines.append(f"{inputs.config_path} line {mount.line}: the {mount.how} "
                         f"--mount=type={mount.kind} step runs without {_what(mount)} "
                         "(this farm passes builds none).")
        if with_farm_root(text, root) != text:
            lines.append(f"{inputs.config_path}: FROM {ROOT_SHORT_NAME} is this farm's Debian "
                         f"root, {root}")
        return lines

    def render(self, inputs: BuildInputs) -> str:
        text = with_farm_root(self._text(inputs), inputs.config.root_image_name)
        return with_builtin_frontend(text).text

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        return {}

    @staticmethod
    def build_args(config: Config) -> dict[str, str]:
        """The Binder image conventions, as the Binder documentation's Dockerfiles expect."""
        return {"NB_USER": str(config.nb_user), "NB_UID": str(config.nb_uid),
                "REPO_DIR": config.repo_path}
