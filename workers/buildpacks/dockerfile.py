"""``Dockerfile``: the repository's own, built with the repository as context.

It gets ``NB_USER``, ``NB_UID`` and ``REPO_DIR`` as build arguments, as
BinderHub passes them; nothing is composed on top of it.
"""

from __future__ import annotations

from common.config import Config
from workers.buildpacks.base import BuildInputs, BuildPack
from workers.dockerignore import check_ignore_files
from workers.image_policy import check_dockerfile


class DockerfileBuildPack(BuildPack):
    id = "Dockerfile"
    config_file = "Dockerfile"
    owns_context = True

    def _text(self, inputs: BuildInputs) -> str:
        assert inputs.config_path is not None
        # surrogateescape keeps stray bytes as they are, as Docker's parser sees them
        return (inputs.checkout / inputs.config_path).read_text(errors="surrogateescape")

    def check(self, inputs: BuildInputs) -> None:
        """Every image the build could pull must be allowed (``workers/image_policy.py``);
        the ignore files must be files of the repository."""
        assert inputs.config_path is not None
        check_dockerfile(self._text(inputs), inputs.config.allowed_base_images,
                         self.build_args(inputs.config))
        check_ignore_files(inputs.checkout, inputs.config_path)

    def render(self, inputs: BuildInputs) -> str:
        return self._text(inputs)

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        return {}

    @staticmethod
    def build_args(config: Config) -> dict[str, str]:
        """The Binder image conventions, as the Binder documentation's Dockerfiles expect."""
        return {"NB_USER": str(config.nb_user), "NB_UID": str(config.nb_uid),
                "REPO_DIR": config.repo_path}
