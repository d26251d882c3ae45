"""``environment.yml``: a conda environment solved and installed by py-rattler.

The build runs ``conda_env.py`` (shipped in the context under
``.binder-build/``) with the base image's ``/opt/rattler/bin/python``: it
solves ``dependencies`` with py-rattler against the farm's channels
(``BINDER_CONDA_CHANNELS``, which replace the file's ``channels``; detect
logs so), installs them into
``/srv/env`` (replacing the base image's venv there), installs the ``pip:``
subsection with the farm's Python installer, and registers the
environment's Python as the ``python3`` kernel, installing ipykernel into it
first (with the same installer) when it has none.
The same script installs runtime.txt's ``python-X.Y`` alone
(:func:`runtime_python_step`).

Only ``environment.yml`` is staged before the install, so a code-only change
reuses the dependency layer; when a ``pip:`` entry refers to files of the
repository (``-e .``, ``-r other.txt``), the whole repository comes first.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from common.config import Config
from common.errors import BuildFailure
from workers import repo_yaml
from workers.buildpacks.base import (
    CONFIG_STAGING,
    ENV_PREFIX,
    ENV_PYTHON,
    BuildInputs,
    BuildPack,
    Install,
    staged,
)
from workers.buildpacks.conda_env import (
    EnvironmentFileError,
    EnvironmentSpec,
    match_specs,
    parse_environment,
)
from workers.buildpacks.installers import (
    CACHE_ROOT,
    cache_mount,
    install_argv,
    python_cache_mount,
)
from workers.buildpacks.requirements import needs_repository
from workers.config_files import cap_for, read_config_bytes
from workers.package_index import check_requirement_lines, logical_lines, sources_replaced

SCRIPT = "conda_env.py"
SCRIPT_SOURCE = Path(__file__).with_name(SCRIPT)
#: The repository YAML loader the script imports inside the build.
LOADER = "repo_yaml.py"
LOADER_SOURCE = Path(repo_yaml.__file__)
#: The base image's venv holding py-rattler and pyyaml.
RATTLER_PYTHON = "/opt/rattler/bin/python"


def _run_script(config: Config, args: list[str]) -> str:
    """The RUN line of the script (exec form inside ``sh -c``-free JSON)."""
    argv = [RATTLER_PYTHON, staged(SCRIPT), *args, "--prefix", ENV_PREFIX,
            "--installer", json.dumps(install_argv(config, "{python}")),
            "--cache-dir", f"{CACHE_ROOT}/rattler"]
    for channel in config.conda_channels:
        argv += ["--channel", channel]
    mounts = f"{cache_mount('rattler', config.nb_uid)} {python_cache_mount(config)}"
    return f"RUN {mounts} {json.dumps(argv)}"


def script_lines(inputs: BuildInputs) -> list[str]:
    """Stage the script (once per Dockerfile)."""
    uid = inputs.config.nb_uid
    return [f"COPY --chown={uid}:{uid} .binder-build/{SCRIPT} .binder-build/{LOADER} "
            f"{CONFIG_STAGING}/"]


def runtime_python_step(inputs: BuildInputs, version: str) -> list[str]:
    """Lines putting Python ``version`` from ``BINDER_CONDA_CHANNELS`` into ``/srv/env``."""
    return [*script_lines(inputs), _run_script(inputs.config, ["--python", version])]


def script_file() -> dict[str, bytes]:
    return {SCRIPT: SCRIPT_SOURCE.read_bytes(), LOADER: LOADER_SOURCE.read_bytes()}


class CondaBuildPack(BuildPack):
    id = "environment.yml"
    config_file = "environment.yml"
    brings_python = True

    @staticmethod
    def _spec(inputs: BuildInputs) -> EnvironmentSpec:
        """The parsed config file; raises ``EnvironmentFileError`` when it is invalid
        (``BuildFailure`` when it is over its cap)."""
        assert inputs.config_path is not None
        return parse_environment(read_config_bytes(inputs.checkout, inputs.config_path))

    def check(self, inputs: BuildInputs) -> None:
        """The file must parse, its dependencies may not be package URLs, and its ``pip:``
        entries may not name a package index."""
        assert inputs.config_path is not None
        try:
            spec = self._spec(inputs)
            match_specs(spec.conda)  # no package downloaded past the farm's channels
        except EnvironmentFileError as exc:
            raise BuildFailure(str(exc), suggestions=[
                "See https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/"
                "manage-environments.html#create-env-file-manually"]) from exc
        self._check_pip(inputs, spec)

    def _check_pip(self, inputs: BuildInputs, spec: EnvironmentSpec,
                   opened: list[PurePosixPath] | None = None) -> None:
        assert inputs.config_path is not None
        env_file = inputs.checkout / inputs.config_path
        # each entry, and the entries as pip reads the file they are written to
        # (conda_env.pip_install), where one ending with a backslash goes on in the next
        for lines in (enumerate(spec.pip, start=1), logical_lines("\n".join(spec.pip))):
            check_requirement_lines(lines, "environment.yml pip:", env_file.parent,
                                    inputs.checkout, unit="entry", opened=opened)

    def pulled_in(self, inputs: BuildInputs) -> list[PurePosixPath]:
        opened: list[PurePosixPath] = []
        try:
            spec = self._spec(inputs)
        except EnvironmentFileError:
            return opened  # check() refuses the file with its sentence
        self._check_pip(inputs, spec, opened)
        return opened

    def notices(self, inputs: BuildInputs) -> list[str]:
        """Say so when the file names channels other than the farm's (which replace them)."""
        try:
            declared = [c for c in self._spec(inputs).channels if c != "nodefaults"]
        except EnvironmentFileError:
            return []
        used = list(inputs.config.conda_channels)
        notice = sources_replaced("environment.yml", declared, used) \
            if used and declared != used else None
        return [notice] if notice else []

    def _needs_repo(self, inputs: BuildInputs) -> bool:
        """True when a ``pip:`` entry refers to files of the repository: pip runs
        beside environment.yml, as it does for conda (see ``conda_env.pip_install``)."""
        assert inputs.config_path is not None
        folders = (inputs.checkout / inputs.config_path.parent,)
        try:
            return any(needs_repository(line, folders) for line in self._spec(inputs).pip)
        except EnvironmentFileError:
            return False  # the script reports it in the build

    def install(self, inputs: BuildInputs) -> Install:
        assert inputs.config_path is not None
        result = Install(files=script_file(), own_python=True)
        # the script reads the file again in the build, within the same cap
        cap = ["--max-bytes", str(cap_for(inputs.config_path).max_bytes)]
        if self._needs_repo(inputs):
            result.before_repo = script_lines(inputs)
            result.after_repo = [_run_script(inputs.config, [str(inputs.config_path), *cap])]
        else:
            result.before_repo = [*script_lines(inputs),
                                  self.stage(inputs, inputs.config_path, "environment.yml"),
                                  _run_script(inputs.config, [staged("environment.yml"), *cap])]
        return result


__all__ = ["CondaBuildPack", "ENV_PYTHON", "runtime_python_step", "script_file"]
