"""``Dockerfile``: the repository's own, built with the repository as context.

It gets ``NB_USER``, ``NB_UID`` and ``REPO_DIR`` as build arguments, as
BinderHub passes them; nothing is composed on top of it. ``FROM
binder-root`` (or ``binder-root:latest``) names the farm's Debian root in
its registry, ``REGISTRY/binder-root:latest``, unless the Dockerfile has a
stage of that name; the build uses the Dockerfile with that full name.
"""

from __future__ import annotations

import re

from common.config import Config
from workers.buildpacks.base import BuildInputs, BuildPack, read_config_text
from workers.dockerignore import check_ignore_files
from workers.image_policy import check_dockerfile

ROOT_SHORT_NAME = "binder-root"
_FROM_ROOT = re.compile(r"^(\s*FROM\s+(?:--\S+\s+)*)binder-root(?::latest)?(?=\s|$)",
                        re.IGNORECASE | re.MULTILINE)
_ROOT_STAGE = re.compile(r"^\s*FROM\s.*\sAS\s+binder-root\s*$", re.IGNORECASE | re.MULTILINE)


def with_farm_root(text: str, root_image: str) -> str:
    """``text`` with each ``FROM binder-root`` naming ``root_image`` instead."""
    if _ROOT_STAGE.search(text):
        return text
    return _FROM_ROOT.sub(lambda match: match.group(1) + root_image, text)


class DockerfileBuildPack(BuildPack):
    id = "Dockerfile"
    config_file = "Dockerfile"
    owns_context = True

    def _text(self, inputs: BuildInputs) -> str:
        assert inputs.config_path is not None
        # surrogateescape keeps stray bytes as they are, as Docker's parser sees them
        return read_config_text(inputs.checkout, inputs.config_path, "surrogateescape")

    def check(self, inputs: BuildInputs) -> None:
        """Every image the build could pull must be allowed (``workers/image_policy.py``);
        the ignore files must be files of the repository."""
        assert inputs.config_path is not None
        check_dockerfile(self.render(inputs), inputs.config.allowed_base_images,
                         self.build_args(inputs.config))
        check_ignore_files(inputs.checkout, inputs.config_path)

    def notices(self, inputs: BuildInputs) -> list[str]:
        text = self._text(inputs)
        root = inputs.config.root_image_name
        if with_farm_root(text, root) == text:
            return []
        return [f"{inputs.config_path}: FROM {ROOT_SHORT_NAME} is this farm's Debian root, {root}"]

    def render(self, inputs: BuildInputs) -> str:
        return with_farm_root(self._text(inputs), inputs.config.root_image_name)

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        return {}

    @staticmethod
    def build_args(config: Config) -> dict[str, str]:
        """The Binder image conventions, as the Binder documentation's Dockerfiles expect."""
        return {"NB_USER": str(config.nb_user), "NB_UID": str(config.nb_uid),
                "REPO_DIR": config.repo_path}
