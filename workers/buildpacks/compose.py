"""One generated Dockerfile from the chosen environment and the files composed on top.

The order, as a Binder user expects it (repo2docker's):

1. ``apt.txt``: Debian packages, as root, in their own layer;
2. R (``runtime.txt`` ``r-...`` or ``DESCRIPTION``): R and IRkernel, as root;
3. the rest as the image user: another Python (``runtime.txt`` ``python-X.Y``),
   the environment's install steps that need only their own file,
   ``install.R``, then the repository copied to ``REPO_DIR``, the steps that
   need it, and ``postBuild``;
4. ``start`` becomes the entrypoint (it ends with ``exec "$@"``, so what it
   exports reaches the server), run with bash when it has no shebang;
5. ``BINDER_APPENDIX``, then the user, ``REPO_DIR``, port and command.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath

from common.config import Config
from common.errors import BuildFailure
from workers.buildpacks.base import (
    ENV_PREFIX,
    ENV_PYTHON,
    HELPERS,
    BuildInputs,
    BuildPack,
    Install,
)
from workers.buildpacks.conda import runtime_python_step, script_file
from workers.buildpacks.installers import apt_install, index_environment
from workers.buildpacks.r import (
    check_cran_url,
    cran_url,
    declared_repos,
    install_r_steps,
    r_system,
)
from workers.buildpacks.runtime import BASE_PYTHON, Runtime, parse_runtime
from workers.config_files import read_config_bytes
from workers.package_index import sources_replaced

#: The repository's scripts the image runs: postBuild while building, start at launch.
SCRIPTS = ("postBuild", "start")
RUN_SCRIPT = "run-script"
SCRIPT_TRAP = "script-trap.sh"
SCRIPTS_SOURCE = Path(__file__).with_name("scripts")
PORT = 8888
#: repo2docker's names of the user's environment, always defined there, which scripts
#: written for it use (``${NB_PYTHON_PREFIX}/bin/pip install ...``); here the
#: notebooks' kernel runs in that environment and Jupyter comes with it on ``PATH``.
PREFIX_VARIABLES = ("NB_PYTHON_PREFIX", "KERNEL_PYTHON_PREFIX")
_APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")


def default_command(port: int = PORT) -> list[str]:
    """The image's command: JupyterLab's server on ``port``, on every interface, no token
    (a launcher in front of it sets its own)."""
    return ["jupyter", "lab", "--ip=0.0.0.0", f"--port={port}", "--no-browser",
            "--IdentityProvider.token="]


def apt_packages(text: str, name: str = "apt.txt") -> list[str]:
    """The Debian packages ``apt.txt`` lists (one or more per line, ``#`` comments)."""
    packages = []
    for number, line in enumerate(text.splitlines(), start=1):
        for word in line.split("#", 1)[0].split():
            if not _APT_PACKAGE.match(word):
                raise BuildFailure(f"{name} line {number}: `{word[:60]}` is not a Debian "
                                   "package name.",
                                   suggestions=["List one Debian package name per line."])
            packages.append(word)
    return packages


def runtime_of(inputs: BuildInputs) -> Runtime | None:
    path = inputs.extras.get("runtime.txt")
    return parse_runtime(inputs.read(path), str(path)) if path else None


def uses_r(inputs: BuildInputs, install: Install) -> bool:
    runtime = runtime_of(inputs)
    return install.needs_r or (runtime is not None and runtime.language == "r")


def check_line_endings(inputs: BuildInputs, name: str) -> None:
    """Raise ``BuildFailure`` when the script ``name`` (``postBuild``, ``start``) has
    Windows line endings: Linux reads ``#!/bin/bash\\r`` as an interpreter that does not
    exist, and bash runs ``touch x\\r`` as a file name ending in a carriage return."""
    path = inputs.extras.get(name)
    # read_bytes: text mode would turn CRLF into LF before we could see it
    if path is None or b"\r\n" not in read_config_bytes(inputs.checkout, path):
        return
    raise BuildFailure(
        f"{path} has Windows (CRLF) line endings; Linux runs it only with Unix (LF) ones.",
        suggestions=[f"Convert it (`dos2unix {path}`, or your editor's LF line endings), "
                     "commit and build again.",
                     "Keep Git from converting it back on Windows: "
                     "`git config core.autocrlf input`, or a `.gitattributes` line "
                     f"`{PurePosixPath(path).name} text eol=lf`."])


def check_extras(pack: BuildPack, inputs: BuildInputs) -> None:
    """Raise ``BuildFailure`` for a composed file that cannot be built."""
    for script in SCRIPTS:
        check_line_endings(inputs, script)
    runtime = runtime_of(inputs)
    if "apt.txt" in inputs.extras:
        apt_packages(inputs.read(inputs.extras["apt.txt"]), str(inputs.extras["apt.txt"]))
    if uses_r(inputs, pack.install(inputs)):
        check_cran_url(inputs.config)
    if runtime is not None and runtime.language == "python" and not runtime.is_base_python \
            and not inputs.config.conda_channels:
        raise BuildFailure(f"runtime.txt asks for Python {runtime.version}, but this farm has "
                           "no conda channels to take it from (BINDER_CONDA_CHANNELS).")


def extras_notices(pack: BuildPack, inputs: BuildInputs) -> list[str]:
    """Build-log lines about the composed files: the farm's CRAN repository replaces
    the ones ``install.R`` names."""
    path = inputs.extras.get("install.R")
    if path is None or not uses_r(inputs, pack.install(inputs)):
        return []
    runtime = runtime_of(inputs)
    note = sources_replaced(str(path), declared_repos(inputs.read(path)),
                            [cran_url(inputs.config, runtime.date if runtime else None)])
    return [note] if note else []


def context_files(pack: BuildPack, inputs: BuildInputs) -> dict[str, bytes]:
    files = dict(pack.install(inputs).files)
    if _runtime_python(inputs, pack.install(inputs)):
        files.update(script_file())
    if "postBuild" in inputs.extras or "start" in inputs.extras:
        for name in (RUN_SCRIPT, SCRIPT_TRAP):
            files[name] = (SCRIPTS_SOURCE / name).read_bytes()
    return files


def _runtime_python(inputs: BuildInputs, install: Install) -> str | None:
    """The Python to install from conda channels, when one is asked for and not the base's."""
    runtime = runtime_of(inputs)
    version = runtime.version if runtime and runtime.language == "python" else install.python
    if not version or install.own_python or version == BASE_PYTHON:
        return None
    return version


def _register_kernel() -> str:
    python = ENV_PYTHON
    return (f"RUN if {python} -c 'import ipykernel' 2>/dev/null; then "
            f"{python} -m ipykernel install --sys-prefix --name python3 "
            "--display-name 'Python 3 (ipykernel)'; else echo 'this Python has no ipykernel: "
            "notebooks keep the base image Python 3 kernel (add ipykernel to use it)'; fi")


def _appendix(config: Config) -> list[str]:
    text = str(config.appendix).replace("\\n", "\n")
    return [line for line in text.splitlines() if line.strip()]


def repo_copy(config: Config) -> str:
    """The instruction copying the repository's files into ``REPO_DIR``: the layer that
    differs between a code-only commit and the one before it."""
    return f"COPY --chown={config.nb_uid}:{config.nb_uid} repo/ {config.repo_path}/"


def run_post_build(config: Config, path: PurePosixPath) -> str:
    """The ``RUN`` line of ``postBuild``: run-script, with the farm's index for the pip and
    uv commands the script runs (the index builds see: ``BINDER_PIP_PROXY`` when the
    index has credentials)."""
    environment = index_environment(str(config.pip_index_url))
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in environment.items())
    return f"RUN {assignments}bash {HELPERS}/{RUN_SCRIPT} {shlex.quote(str(path))}"


def start_command(inputs: BuildInputs, start: str) -> list[str]:
    """How the image runs ``start`` (at ``start`` in the image): itself, as its shebang
    says, or with bash when it has none. repo2docker's entrypoint runs it with bash's
    ``exec``, which hands a script without a shebang to bash; the system's would hand it
    to sh, which has neither ``[[`` nor ``source``."""
    first = read_config_bytes(inputs.checkout, inputs.extras["start"]).split(b"\n", 1)[0]
    return [start] if first.startswith(b"#!") else ["bash", start]


def compose(pack: BuildPack, inputs: BuildInputs) -> str:
    """The generated Dockerfile of ``pack`` with ``inputs.extras`` composed on top."""
    config = inputs.config
    install = pack.install(inputs)
    runtime = runtime_of(inputs)
    user, uid, repo = config.nb_user, config.nb_uid, config.repo_path
    extras = inputs.extras
    lines = [f"FROM {inputs.base_image}", "USER root",
             f"LABEL org.binder-build.config={inputs.config_path or 'none'}",
             f"ENV REPO_DIR={repo}",
             "ENV " + " ".join(f"{name}={ENV_PREFIX}" for name in PREFIX_VARIABLES)]
    if "apt.txt" in extras:
        lines.append(apt_install(apt_packages(inputs.read(extras["apt.txt"]))))
    r = uses_r(inputs, install)
    if r:
        lines += r_system(config, runtime.date if runtime else None)
    if "postBuild" in extras or "start" in extras:
        lines.append(f"COPY .binder-build/{RUN_SCRIPT} .binder-build/{SCRIPT_TRAP} {HELPERS}/")
    if repo != config.home_dir:
        lines.append(f"RUN install -d -o {uid} -g {uid} {repo}")
    lines.append(f"USER {user}")
    python = _runtime_python(inputs, install)
    if python:
        lines += runtime_python_step(inputs, python)
    lines += install.before_repo
    install_r, install_r_again = (install_r_steps(config, extras["install.R"])
                                  if r and "install.R" in extras else ([], []))
    lines += install_r
    lines += [repo_copy(config), f"WORKDIR {repo}"]
    lines += install_r_again
    lines += install.after_repo
    if python:
        lines.append(_register_kernel())
    if "postBuild" in extras:
        lines.append(run_post_build(config, extras["postBuild"]))
    if "start" in extras:
        start = f"{repo}/{extras['start']}"
        lines += [f"RUN chmod +x {shlex.quote(start)}",
                  f"ENTRYPOINT {json.dumps(['tini', '-g', '--', *start_command(inputs, start)])}"]
    appendix = _appendix(config)
    if appendix:
        lines += ["# BINDER_APPENDIX", *appendix]
    lines += [f"USER {user}", f"WORKDIR {repo}", f"EXPOSE {PORT}",
              f"CMD {json.dumps(default_command())}"]
    return "\n".join(lines) + "\n"
