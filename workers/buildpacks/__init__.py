"""Buildpacks and detection: exactly one config file decides the build.

``BUILDPACKS`` is the one list of config types. The ``BINDER_CONFIG_ORDER``
setting orders their config files (default: requirements.txt,
environment.yml, Dockerfile, as the original binder-build); with none
present the default buildpack builds the base image plus the repository.
A ``binder/`` or ``.binder/`` folder, when present, is where config files
are looked for.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from common.config import Config
from common.errors import BuildFailure
from workers.buildpacks.base import BuildInputs, BuildPack
from workers.buildpacks.conda import CondaBuildPack
from workers.buildpacks.default import DefaultBuildPack
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.buildpacks.requirements import RequirementsBuildPack

#: Every buildpack chosen by a config file; the default comes when none matches.
BUILDPACKS: list[BuildPack] = [RequirementsBuildPack(), CondaBuildPack(), DockerfileBuildPack()]
DEFAULT_BUILDPACK = DefaultBuildPack()

CONFIG_DIRS = ("binder", ".binder")


def config_dir(checkout: Path) -> Path:
    """``binder/`` or ``.binder/`` when the repository has one, else its root."""
    for name in CONFIG_DIRS:
        candidate = checkout / name
        if candidate.is_dir() and not candidate.is_symlink():
            return candidate
    return checkout


def _inside(checkout: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(checkout.resolve())
        return True
    except ValueError:
        return False


def detect(checkout: Path, config: Config) -> tuple[BuildPack, PurePosixPath | None]:
    """The buildpack for ``checkout`` and its config file (relative path)."""
    by_file = {pack.config_file: pack for pack in BUILDPACKS}
    unknown = [name for name in config.config_order if name not in by_file]
    if unknown:
        raise BuildFailure(f"BINDER_CONFIG_ORDER names unknown config files: {unknown}",
                           suggestions=[f"Known: {', '.join(str(f) for f in by_file)}."])
    folder = config_dir(checkout)
    for file_name in config.config_order:
        path = folder / file_name
        if not (path.is_file() or path.is_symlink()):
            continue
        if not _inside(checkout, path) or not path.is_file():
            raise BuildFailure(f"{path.relative_to(checkout)} is a link that leads outside "
                               "the repository.", suggestions=["Commit the file itself."])
        return by_file[file_name], PurePosixPath(path.relative_to(checkout).as_posix())
    return DEFAULT_BUILDPACK, None


__all__ = ["BUILDPACKS", "DEFAULT_BUILDPACK", "BuildInputs", "BuildPack", "detect"]
