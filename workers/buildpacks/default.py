"""No config file: the base image plus the repository."""

from __future__ import annotations

from workers.buildpacks.base import BuildInputs, BuildPack


class DefaultBuildPack(BuildPack):
    id = "default"
    config_file = None

    def render(self, inputs: BuildInputs) -> str:
        return "\n".join(self.preamble(inputs) + self.finish()) + "\n"
