"""``environment.yml``: a conda environment solved and installed by py-rattler."""

from __future__ import annotations

from workers.buildpacks.base import BuildInputs, BuildPack


class CondaBuildPack(BuildPack):
    id = "environment.yml"
    config_file = "environment.yml"

    def render(self, inputs: BuildInputs) -> str:
        raise NotImplementedError("environment.yml builds are not available yet")
