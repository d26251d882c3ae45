"""``Dockerfile``: the repository's own, built with the repository as context."""

from __future__ import annotations

import re

from common.errors import BuildFailure
from workers.buildpacks.base import BuildInputs, BuildPack

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)


def base_images(dockerfile: str) -> list[str]:
    """Images the Dockerfile starts FROM, leaving out references to its own stages."""
    stages: set[str] = set()
    images = []
    for match in _FROM.finditer(dockerfile):
        image, alias = match.group(1), match.group(2)
        if image.lower() not in stages:
            images.append(image)
        if alias:
            stages.add(alias.lower())
    return images


class DockerfileBuildPack(BuildPack):
    id = "Dockerfile"
    config_file = "Dockerfile"
    owns_context = True

    def _text(self, inputs: BuildInputs) -> str:
        assert inputs.config_path is not None
        return (inputs.checkout / inputs.config_path).read_text(errors="replace")

    def check(self, inputs: BuildInputs) -> None:
        allowed = tuple(inputs.config.allowed_base_images)
        images = base_images(self._text(inputs))
        if not images:
            raise BuildFailure("The Dockerfile has no FROM line.",
                               suggestions=[f"Start it with FROM {inputs.base_image}."])
        if not allowed:
            return
        for image in images:
            if image not in allowed:
                raise BuildFailure(
                    f"The Dockerfile starts FROM {image}, which this farm does not allow; "
                    f"allowed base images: {', '.join(allowed)}.",
                    suggestions=["Change the FROM line to one of the allowed images."])

    def render(self, inputs: BuildInputs) -> str:
        return self._text(inputs)
