"""Environment files the farm recognises but cannot build: they fail with a sentence."""

from __future__ import annotations

from common.errors import BuildFailure
from workers.buildpacks.base import BuildInputs, BuildPack

SUPPORTED = ("requirements.txt, environment.yml, a Dockerfile, setup.py, pyproject.toml, "
             "Pipfile, Pipfile.lock, DESCRIPTION and runtime.txt (python-X.Y or "
             "r-YYYY-MM-DD), with apt.txt, postBuild, start and install.R on top")


class UnsupportedBuildPack(BuildPack):
    """A file naming a language or tool whose runtime this farm does not provide."""

    def __init__(self, config_file: str, what: str) -> None:
        self.config_file = config_file
        self.id = config_file
        self.what = what

    def check(self, inputs: BuildInputs) -> None:
        raise BuildFailure(
            f"{inputs.config_path} asks for {self.what}, which this farm cannot build; "
            f"it builds {SUPPORTED}.",
            suggestions=["Describe the environment with one of those files, or build the "
                         "image from a Dockerfile."])


UNSUPPORTED = [
    UnsupportedBuildPack("Project.toml", "a Julia environment"),
    UnsupportedBuildPack("JuliaProject.toml", "a Julia environment"),
    UnsupportedBuildPack("REQUIRE", "a Julia environment (REQUIRE)"),
    UnsupportedBuildPack("default.nix", "a Nix environment"),
]
