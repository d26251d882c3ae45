"""``environment.yml``: a conda environment solved and installed by py-rattler.

The build runs ``conda_env.py`` (shipped in the context under
``.binder-build/``) with the base image's ``/opt/rattler/bin/python``: it
solves ``dependencies`` with py-rattler against the farm's channels
(``BINDER_CONDA_CHANNELS``, which replace the file's ``channels``; detect
logs so), installs them into ``/srv/env``, pip-installs the ``pip:``
subsection (into the environment's own Python, or into ``/srv/env`` made a
venv over the system Python when the environment has none) and registers
the environment's Python as the notebook's ``python3`` kernel when it can
import ipykernel. ``/srv/env/bin`` comes first on ``PATH``.

Only ``environment.yml`` is staged before the install, so a code-only change
reuses the dependency layer; when a ``pip:`` entry refers to files of the
repository (``-e .``, ``-r other.txt``), the whole repository comes first.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.errors import BuildFailure
from workers import repo_yaml
from workers.buildpacks.base import CONFIG_STAGING, ENV_PREFIX, HOME, BuildInputs, BuildPack
from workers.buildpacks.conda_env import (
    EnvironmentFileError,
    EnvironmentSpec,
    parse_environment,
    pip_needs_repo,
)
from workers.package_index import check_requirement_lines, sources_replaced

SCRIPT = "conda_env.py"
SCRIPT_SOURCE = Path(__file__).with_name(SCRIPT)
#: The repository YAML loader the script imports inside the build.
LOADER = "repo_yaml.py"
LOADER_SOURCE = Path(repo_yaml.__file__)
#: The base image's venv holding py-rattler and pyyaml.
RATTLER_PYTHON = "/opt/rattler/bin/python"


class CondaBuildPack(BuildPack):
    id = "environment.yml"
    config_file = "environment.yml"

    @staticmethod
    def _spec(inputs: BuildInputs) -> EnvironmentSpec:
        """The parsed config file; raises ``EnvironmentFileError`` when it is invalid."""
        assert inputs.config_path is not None
        try:
            data = repo_yaml.read_repo_file(inputs.checkout / inputs.config_path,
                                            "environment.yml")
        except repo_yaml.RepoYamlError as exc:
            raise EnvironmentFileError(str(exc)) from None
        return parse_environment(data.decode("utf-8", "replace"))

    def check(self, inputs: BuildInputs) -> None:
        """The file must parse, and its ``pip:`` entries may not name a package index."""
        assert inputs.config_path is not None
        try:
            spec = self._spec(inputs)
        except EnvironmentFileError as exc:
            raise BuildFailure(str(exc), suggestions=[
                "See https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/"
                "manage-environments.html#create-env-file-manually"]) from exc
        env_file = inputs.checkout / inputs.config_path
        check_requirement_lines(enumerate(spec.pip, start=1), "environment.yml pip:",
                                env_file.parent, inputs.checkout, unit="entry")

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

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        return {SCRIPT: SCRIPT_SOURCE.read_bytes(), LOADER: LOADER_SOURCE.read_bytes()}

    def _needs_repo(self, inputs: BuildInputs) -> bool:
        try:
            return pip_needs_repo(self._spec(inputs))
        except EnvironmentFileError:
            return False  # the script reports it in the build

    @staticmethod
    def _command(inputs: BuildInputs, env_file: str) -> str:
        """The RUN line (exec form: nothing goes through a shell)."""
        argv = [RATTLER_PYTHON, f"{CONFIG_STAGING}/{SCRIPT}", env_file, "--prefix", ENV_PREFIX]
        if inputs.config.pip_index_url:
            argv += ["--pip-index-url", str(inputs.config.pip_index_url)]
        for channel in inputs.config.conda_channels:
            argv += ["--channel", channel]
        return f"RUN {json.dumps(argv)}"

    def render(self, inputs: BuildInputs) -> str:
        assert inputs.config_path is not None
        lines = self.preamble(inputs) + [
            f"COPY .binder-build/{SCRIPT} {CONFIG_STAGING}/{SCRIPT}",
            f"COPY .binder-build/{LOADER} {CONFIG_STAGING}/{LOADER}",
            f"ENV PATH={ENV_PREFIX}/bin:$PATH CONDA_PREFIX={ENV_PREFIX}",
        ]
        if self._needs_repo(inputs):
            lines += [f"COPY --chown=1000:1000 repo/ {HOME}/", f"WORKDIR {HOME}",
                      self._command(inputs, f"{HOME}/{inputs.config_path}")]
        else:
            lines += [self.stage_config(inputs, "environment.yml"),
                      self._command(inputs, f"{CONFIG_STAGING}/environment.yml")]
        return "\n".join(lines + self.finish()) + "\n"
