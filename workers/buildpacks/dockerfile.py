"""``Dockerfile``: the repository's own, built with the repository as context."""

from __future__ import annotations

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
        check_dockerfile(self._text(inputs), inputs.config.allowed_base_images)
        check_ignore_files(inputs.checkout, inputs.config_path)

    def render(self, inputs: BuildInputs) -> str:
        return self._text(inputs)
