"""Verification carried over: an image that differs from one verified on this host
only in repository files that cannot change how it starts is not started again.

A code-only commit, or another repository with the same environment, builds an
image whose layers are those of an image verified before, all but the newest:
the repository's files, copied into ``REPO_DIR``. Starting it again proves
nothing new when those files cannot change how it starts; the push phase then
names the build whose verification stands for this one instead
(``BINDER_VERIFY_REUSE=false`` starts every image).

The key is a digest of all that decides whether an image serves: every layer
below the repository's files, the image's configuration (entrypoint, command,
environment, user, working directory, ports), the port and command
verification runs, verification's own limits, and the host. An image has a
key only when

- the farm generated its Dockerfile (a repository's own Dockerfile may do
  anything in any layer);
- its newest layer is the copy of the repository: nothing ran after it (no
  ``postBuild``, no ``start``, no step installing the repository itself);
- none of the repository's top-level names is read when the image starts
  (``inert_files``).

A key is recorded only after a verification succeeded, so an image whose
environment never served is always started.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import verification_store
from common.config import Config
from common.errors import BadDatabase, NoDatabase
from common.models import BuildRecord
from workers.binder_yml import FILE_NAMES as BINDER_YML_NAMES
from workers.buildpacks import CONFIG_DIRS
from workers.buildpacks.compose import repo_copy
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.verify import VERIFY_CPUS, VERIFY_PIDS

#: Hidden top-level entries a repository may hold and still count as inert: Git's,
#: CI services' and Binder's own (the farm reads them before the build). Any other
#: (``.local``, ``.jupyter``, ``.config``, ``.bashrc``, ...) lands in the home
#: directory, where Python, Jupyter or a shell read it at start.
HIDDEN_INERT = frozenset({
    ".git", ".gitignore", ".gitattributes", ".gitmodules", ".mailmap", ".github",
    ".gitlab", ".gitlab-ci.yml", ".travis.yml", ".circleci", ".dockerignore",
    ".editorconfig", ".pre-commit-config.yaml", ".readthedocs.yml", ".readthedocs.yaml",
    ".zenodo.json",
    *(name for name in (*CONFIG_DIRS, *BINDER_YML_NAMES) if name.startswith(".")),
})
#: Top-level names read from the working directory at start: Jupyter's configuration
#: files (``jupyter_server_config.py``, ...) and a ``start`` script.
_READ_AT_START = re.compile(r"^(jupyter.*|start)$", re.IGNORECASE)
#: The diff id of a layer that changes no file (BuildKit writes one for each ``WORKDIR``
#: that finds its directory there).
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def inert_files(checkout: Path) -> str | None:
    """Why the repository's files may change how its image starts (the first top-level
    name that may), or ``None`` when they cannot."""
    # The checkout, not the copy: an ignore file only leaves names out of the image, so
    # what the checkout holds is at least what the image holds.
    for entry in sorted(checkout.iterdir()):
        name = entry.name
        if (name.startswith(".") and name not in HIDDEN_INERT) or _READ_AT_START.match(name):
            return f"the repository holds {name}, which may change how the image starts"
    return None


def _instruction(text: str) -> str:
    """A Dockerfile instruction as an image's history shows it: no flags (BuildKit
    leaves ``--chown`` out), no ``# buildkit`` mark."""
    text = text.removesuffix("# buildkit").strip()
    return " ".join(word for word in text.split() if not word.startswith("--"))


def may_reuse(config: Config, buildpack: str | None) -> bool:
    """Whether a verification may stand for an image built with ``buildpack`` at all."""
    return config.verify_reuse and buildpack != DockerfileBuildPack.id


def key_for(config: Config, record: BuildRecord, checkout: Path,
            shape: dict[str, Any] | None, port: int, command: str,
            say: Callable[[str], None]) -> str | None:
    """The key under which a verification may stand for the image of ``record``, whose
    ``shape`` the build phase took (``image_shape``); ``None`` when it must be started."""
    if not may_reuse(config, record.get("buildpack")) or shape is None:
        return None
    try:
        reason = inert_files(checkout)
    except OSError:
        return None  # no checkout on this host any more: start the image
    if reason is not None:
        say(f"verifying this image: {reason}")
        return None
    return shaped_key(config, shape, port, command)


def image_shape(config: Config, attrs: dict[str, Any],
                history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What of an image (its engine ``attrs`` and ``history``, newest first) decides
    how it starts: every layer below the repository's files and its configuration;
    ``None`` unless its newest layer is the repository's files."""
    newest = next((step for step in history if step.get("Size")), None)
    if newest is None or _instruction(newest.get("CreatedBy") or "") \
            != _instruction(repo_copy(config)):
        return None
    layers = list(attrs["RootFS"]["Layers"])
    while layers and layers[-1] == EMPTY_LAYER:  # WORKDIR and the like after the copy
        layers.pop()
    image_config = attrs.get("Config") or {}
    return {"layers": layers[:-1],
            **{field: image_config.get(field) for field in
               ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "ExposedPorts")}}


def shaped_key(config: Config, shape: dict[str, Any], port: int, command: str) -> str:
    """The key of an image of ``shape`` that verification starts with ``command`` on
    ``port`` on this host, under its limits."""
    shaping = {
        **shape, "port": port, "command": command, "host": config.worker_host,
        "limits": [config.build_memory, VERIFY_CPUS, VERIFY_PIDS, config.verify_timeout],
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


def standing_verification(key: str) -> dict[str, Any] | None:
    """The recorded verification that stands for an image of ``key``, if any; the
    store being unreachable means none (the image is started)."""
    try:
        return verification_store.find_verification(key)
    except (NoDatabase, BadDatabase):
        return None


def remember(key: str, build: str, image: str) -> None:
    """Record a verification that succeeded; one not recorded only costs a start later."""
    with contextlib.suppress(NoDatabase, BadDatabase):
        verification_store.remember_verification(key, build, image)
