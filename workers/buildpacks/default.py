"""No environment file: the base image's environment plus the repository."""

from __future__ import annotations

from workers.buildpacks.base import BuildPack


class DefaultBuildPack(BuildPack):
    id = "default"
    config_file: str | None = None
