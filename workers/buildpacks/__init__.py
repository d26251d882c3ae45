"""Buildpacks and detection: one environment file, and the files composed on top.

``BUILDPACKS`` is the one list of environment buildpacks. The
``BINDER_CONFIG_ORDER`` setting orders their files: ``default`` (the
original binder-build's requirements.txt, environment.yml, Dockerfile, then
the others), ``repo2docker`` (mybinder.org's precedence: a Dockerfile first,
environment.yml over requirements.txt) or an explicit list; a ``Containerfile``
comes right after the Dockerfile in any of them (``ALIASES``). The first
present file that applies is the environment; with none the default
buildpack builds the base image's environment plus the repository.

``apt.txt``, ``runtime.txt``, ``install.R`` (with R), ``postBuild`` and
``start`` compose on top of any environment but a repository Dockerfile;
``requirements.txt``, a Python package (``setup.py``, ``pyproject.toml``)
and an R package (``DESCRIPTION``) at the root are installed together, as
repo2docker does (``BESIDE``).
A file that applies but is left out in this combination is named in the
build log, never silently ignored; a file the farm cannot build (Julia,
Nix) fails the build with a sentence. A ``binder/`` or ``.binder/`` folder,
when present, is where the files are looked for (``binder/`` when both are,
``.binder/`` then named as ignored); the root's config files are then named
as ignored, as repo2docker ignores them, and so are ``setup.py`` and
``DESCRIPTION`` in the folder (``ROOT_ONLY``): repo2docker installs a package
only from the root of a repository without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from common.config import Config
from common.errors import BuildFailure
from common.models import FailureCause
from workers.buildpacks.base import BuildInputs, BuildPack
from workers.buildpacks.beside import BesideBuildPack
from workers.buildpacks.compose import check_extras, extras_notices, runtime_of
from workers.buildpacks.conda import CondaBuildPack
from workers.buildpacks.default import DefaultBuildPack
from workers.buildpacks.dockerfile import CONTAINERFILE, DockerfileBuildPack
from workers.buildpacks.pipfile import PipfileBuildPack, PipfileLockBuildPack
from workers.buildpacks.python_package import (
    PACKAGE_FILES,
    PyprojectBuildPack,
    SetupPyBuildPack,
)
from workers.buildpacks.r import DescriptionBuildPack
from workers.buildpacks.requirements import RequirementsBuildPack
from workers.buildpacks.unsupported import UNSUPPORTED
from workers.dockerignore import check_ignore_files


class RuntimeBuildPack(DefaultBuildPack):
    """``runtime.txt`` alone: the base environment with the Python or R it asks for."""

    id = "runtime.txt"
    config_file = "runtime.txt"


#: Every environment buildpack chosen by a file; the default comes when none applies.
BUILDPACKS: list[BuildPack] = [
    RequirementsBuildPack(), CondaBuildPack(), DockerfileBuildPack(),
    DockerfileBuildPack(CONTAINERFILE), SetupPyBuildPack(),
    PyprojectBuildPack(), PipfileLockBuildPack(), PipfileBuildPack(), DescriptionBuildPack(),
    RuntimeBuildPack(), *UNSUPPORTED,
]
DEFAULT_BUILDPACK = DefaultBuildPack()

ORDERS = {
    "default": ("requirements.txt", "environment.yml", "Dockerfile", "setup.py",
                "pyproject.toml", "Pipfile.lock", "Pipfile", "DESCRIPTION", "Project.toml",
                "JuliaProject.toml", "REQUIRE", "default.nix", "runtime.txt"),
    "repo2docker": ("Dockerfile", "Project.toml", "JuliaProject.toml", "REQUIRE", "default.nix",
                    "DESCRIPTION", "environment.yml", "Pipfile.lock", "Pipfile",
                    "requirements.txt", "setup.py", "pyproject.toml", "runtime.txt"),
}
#: Other names of an environment file, looked for right after it in any order that does
#: not place them itself: Podman's name for a Dockerfile (a Dockerfile wins over it).
ALIASES = {"Dockerfile": (CONTAINERFILE,)}
#: Files composed on top of the environment, in the order they apply.
EXTRAS = ("apt.txt", "runtime.txt", "install.R", "postBuild", "start")
#: Files that go with another one and are never named as ignored beside it.
COMPANIONS = {"Pipfile.lock": ("Pipfile",)}
#: Environment files installed after the chosen one when both are at the repository's
#: root, as repo2docker's Python and R buildpacks install them together (the R package
#: of DESCRIPTION, ``pip install -r requirements.txt``, ``pip install .``; one Python
#: package, and none from a config folder).
BESIDE = {"requirements.txt": ("setup.py", "pyproject.toml", "DESCRIPTION"),
          "DESCRIPTION": ("requirements.txt", "setup.py", "pyproject.toml"),
          "setup.py": ("DESCRIPTION",), "pyproject.toml": ("DESCRIPTION",)}

CONFIG_DIRS = ("binder", ".binder")
#: Files that make the repository a package, which repo2docker installs only from the root
#: of a repository without a config folder: in ``binder/`` they are left out.
ROOT_ONLY = ("setup.py", "DESCRIPTION")


@dataclass(frozen=True)
class Detection:
    """What a checkout builds with: the environment, the files on top, what is left out."""

    buildpack: BuildPack
    config_path: PurePosixPath | None
    extras: dict[str, PurePosixPath] = field(default_factory=dict)
    ignored: list[tuple[PurePosixPath, str]] = field(default_factory=list)

    def inputs(self, checkout: Path, config: Config) -> BuildInputs:
        return BuildInputs(checkout, self.config_path, config, self.extras)

    @property
    def applied(self) -> list[PurePosixPath]:
        """Every file that shapes the image, in the order it applies."""
        files = [self.extras[name] for name in ("apt.txt", "runtime.txt") if name in self.extras]
        if self.config_path is not None and self.config_path not in files:
            files.append(self.config_path)
        files += [path for name, path in self.extras.items() if name not in EXTRAS]
        files += [self.extras[name] for name in ("install.R", "postBuild", "start")
                  if name in self.extras]
        return files


def _config_dirs(checkout: Path) -> list[Path]:
    """The config folders the repository has (links are not config folders), by precedence."""
    return [checkout / name for name in CONFIG_DIRS
            if (checkout / name).is_dir() and not (checkout / name).is_symlink()]


def config_dir(checkout: Path) -> Path:
    """``binder/`` or ``.binder/`` when the repository has one, else its root."""
    return next(iter(_config_dirs(checkout)), checkout)


def _shadowed_config_dirs(checkout: Path) -> list[tuple[PurePosixPath, str]]:
    """A second config folder, as a file left out: ``binder/`` wins over ``.binder/``
    (repo2docker refuses a repository with both; this farm builds it and says so); and a
    link named like one, which the farm does not follow (repo2docker would)."""
    chosen, *others = _config_dirs(checkout) or [checkout]
    links = [(PurePosixPath(name), "it is a link, and a config folder must be a folder of "
                                   "the repository")
             for name in CONFIG_DIRS if (checkout / name).is_symlink()]
    return links + [(PurePosixPath(f"{other.name}/"), f"the files are read from {chosen.name}/")
                    for other in others]


def _hidden_root_files(checkout: Path, folder: Path,
                       names: set[str]) -> list[tuple[PurePosixPath, str]]:
    """The config files at the root that a config folder hides, as files left out (by
    name only: they are neither read nor followed)."""
    if folder == checkout:
        return []
    return [(PurePosixPath(name), f"the files are read from {folder.name}/")
            for name in sorted(names)
            if (checkout / name).is_symlink() or (checkout / name).is_file()]


def _inside(checkout: Path, path: Path) -> bool:
    """True when ``path`` leads to the repository's files: inside the checkout, and not
    into the clone's ``.git``, which never enters a build."""
    try:
        relative = path.resolve().relative_to(checkout.resolve())
    except ValueError:
        return False
    return relative.parts[:1] != (".git",)


def config_order(config: Config) -> tuple[str, ...]:
    """The environment files by precedence, from ``BINDER_CONFIG_ORDER``."""
    names = tuple(config.config_order)
    if len(names) == 1 and names[0] in ORDERS:
        return _with_aliases(ORDERS[names[0]])
    known = {pack.config_file for pack in BUILDPACKS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BuildFailure(
            f"BINDER_CONFIG_ORDER names unknown config files: {', '.join(unknown)}",
            suggestions=[f"Use default, repo2docker or files among: "
                         f"{', '.join(str(f) for f in known)}."], cause=FailureCause.FARM)
    return _with_aliases(names)


def _with_aliases(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with each file's ``ALIASES`` right after it, unless ``names`` has them."""
    return tuple(alias for name in names
                 for alias in (name, *(other for other in ALIASES.get(name, ())
                                       if other not in names)))


def find_config_file(checkout: Path, folder: Path, name: str) -> PurePosixPath | None:
    """``folder/name`` as a repository path when it is a file (a link to a file of the
    repository counts); ``BuildFailure`` for a link that leads anywhere else."""
    path = folder / name
    if not (path.is_file() or path.is_symlink()):
        return None
    try:
        inside = _inside(checkout, path)
    except RuntimeError:  # pathlib's resolve() on a link that leads back to itself
        raise BuildFailure(f"{path.relative_to(checkout)} is a link that leads back to "
                           "itself.", suggestions=["Commit the file itself."]) from None
    if not inside:
        raise BuildFailure(f"{path.relative_to(checkout)} is a link that leads outside "
                           "the repository.", suggestions=["Commit the file itself."])
    if not path.is_file():
        raise BuildFailure(f"{path.relative_to(checkout)} is a link to nothing or to a folder, "
                           "not to a file.", suggestions=["Commit the file itself, or link "
                                                          "to a file of the repository."])
    return PurePosixPath(path.relative_to(checkout).as_posix())


def detect(checkout: Path, config: Config) -> Detection:
    """What ``checkout`` builds with; raises ``BuildFailure`` for what cannot be built."""
    by_file = {pack.config_file: pack for pack in BUILDPACKS}
    folder = config_dir(checkout)
    present = {name: path for name in {*config_order(config), *EXTRAS}
               if (path := find_config_file(checkout, folder, name)) is not None}
    chosen: tuple[BuildPack, PurePosixPath] | None = None
    ignored: list[tuple[PurePosixPath, str]] = [
        (present.pop(name), "repo2docker installs it only from the root of a repository "
                            "without a binder/ or .binder/ folder")
        for name in ROOT_ONLY if folder != checkout and name in present]
    beside: dict[str, PurePosixPath] = {}
    for name in config_order(config):
        if name not in present:
            continue
        pack = by_file[name]
        inputs = BuildInputs(checkout, present[name], config)
        if chosen is None:
            if pack.applies(inputs):
                chosen = (pack, present[name])
            else:
                ignored.append((present[name],
                                "it has neither a [build-system] nor a [project] table"))
        elif (folder == checkout and name in BESIDE.get(str(chosen[0].config_file), ())
              and not (name in PACKAGE_FILES and beside.keys() & set(PACKAGE_FILES))
              and pack.applies(inputs)):
            beside[name] = present[name]
        elif name not in EXTRAS and name not in COMPANIONS.get(str(chosen[0].config_file), ()):
            ignored.append((present[name], f"the environment comes from {chosen[1]}"))
    pack, config_path = chosen if chosen else (DEFAULT_BUILDPACK, None)
    if beside:
        pack = BesideBuildPack(pack, [(by_file[name], path) for name, path in beside.items()])
    extras: dict[str, PurePosixPath] = {}
    for name in EXTRAS:
        if name not in present:
            continue
        if pack.owns_context:
            ignored.append((present[name], f"{config_path} builds the image by itself"))
        else:
            extras[name] = present[name]
    extras.update(beside)  # read by the build: kept in its context whatever .dockerignore says
    detection = Detection(pack, config_path, extras,
                          _shadowed_config_dirs(checkout) + ignored
                          + _hidden_root_files(checkout, folder, {*config_order(config), *EXTRAS}))
    _leave_out_install_r(checkout, config, detection)
    _leave_out_runtime_python(checkout, config, detection)
    _keep_what_the_environment_reads(checkout, config, detection)
    return detection


def _keep_what_the_environment_reads(checkout: Path, config: Config,
                                     detection: Detection) -> None:
    """A file the environment reads is not left out: environment.yml's pip section often
    installs ``-r requirements.txt``, and the log may not say that file is ignored."""
    if detection.config_path is None or detection.buildpack.owns_context:
        return
    try:
        read = set(detection.buildpack.pulled_in(detection.inputs(checkout, config)))
    except BuildFailure:
        return  # check() refuses the file with its sentence
    detection.ignored[:] = [(path, reason) for path, reason in detection.ignored
                            if path not in read]


def _leave_out_runtime_python(checkout: Path, config: Config, detection: Detection) -> None:
    """A conda environment brings its own Python, and a Pipfile that names one in its
    ``[requires]`` chooses it (repo2docker reads it there, never in runtime.txt):
    runtime.txt's python-X.Y does not apply."""
    if "runtime.txt" not in detection.extras or not (
            detection.buildpack.brings_python or _names_its_python(checkout, config, detection)):
        return
    runtime = runtime_of(detection.inputs(checkout, config))
    if runtime is not None and runtime.language == "python":
        path = detection.extras.pop("runtime.txt")
        detection.ignored.append((path, f"{detection.config_path} chooses its own Python"))


def _names_its_python(checkout: Path, config: Config, detection: Detection) -> bool:
    """True when the environment file names the Python it wants (a Pipfile's ``[requires]``)."""
    try:
        return detection.buildpack.install(detection.inputs(checkout, config)).python is not None
    except BuildFailure:
        return False  # check() refuses the file with its sentence


def _leave_out_install_r(checkout: Path, config: Config, detection: Detection) -> None:
    """``install.R`` runs only with R (runtime.txt ``r-...`` or DESCRIPTION), as in repo2docker."""
    if "install.R" not in detection.extras:
        return
    runtime = runtime_of(detection.inputs(checkout, config))
    with_r = "DESCRIPTION" in (detection.buildpack.id, *detection.extras) or (
        runtime is not None and runtime.language == "r")
    if not with_r:
        path = detection.extras.pop("install.R")
        detection.ignored.append((path, "R is chosen by runtime.txt r-YYYY-MM-DD or a "
                                        "DESCRIPTION file"))


def check(detection: Detection, checkout: Path, config: Config) -> None:
    """Raise ``BuildFailure`` when the detected files cannot be built (before Docker runs)."""
    inputs = detection.inputs(checkout, config)
    detection.buildpack.check(inputs)
    if not detection.buildpack.owns_context:
        check_extras(detection.buildpack, inputs)
        check_ignore_files(checkout)


def notices(detection: Detection, checkout: Path, config: Config) -> list[str]:
    """Build-log lines at detect, e.g. package sources the farm replaces."""
    inputs = detection.inputs(checkout, config)
    lines = detection.buildpack.notices(inputs)
    if not detection.buildpack.owns_context:
        lines += extras_notices(detection.buildpack, inputs)
    return lines


def buildpack_by_id(pack_id: str) -> BuildPack:
    return next((pack for pack in BUILDPACKS if pack.id == pack_id), DEFAULT_BUILDPACK)


__all__ = ["BUILDPACKS", "DEFAULT_BUILDPACK", "BuildInputs", "BuildPack", "Detection", "check",
           "detect", "buildpack_by_id", "notices"]
