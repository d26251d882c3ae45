"""Solve and install an ``environment.yml`` into a prefix, inside a Docker build.

This script runs in the build with the base image's ``/opt/rattler/bin/python``
(a venv holding only py-rattler and pyyaml), so it imports nothing from
binder-build but the repository YAML loader, which is shipped beside it
(``repo_yaml.py``). The worker imports it too, for :func:`parse_environment`;
py-rattler is therefore imported only where it is used.

What it does, in order (each step prints progress lines for the build log):

1. read ``environment.yml`` (no more of it than ``--max-bytes``, the worker's
   cap): ``channels``, ``dependencies`` and their ``pip:`` subsection
   (``name``, ``prefix`` and ``variables`` are ignored);
2. solve the conda dependencies with py-rattler against the channels (the
   farm's, given with ``--channel``, replace the file's own; a name such as
   ``conda-forge`` means ``https://conda.anaconda.org/conda-forge``, full URLs
   are used as given) for this machine's platform and ``noarch``, with
   ``r-irkernel`` added when they install R packages (``r-...``), as
   repo2docker adds it, so that notebooks offer R;
3. install the solution into the prefix;
4. make the prefix a venv over the system Python when the solution has no
   Python (the base image's ``make-env-venv``, as it makes its own: Jupyter's
   commands then run the venv's Python), and pip-install the ``pip:`` entries
   with the environment's Python;
5. register the environment's Python as the notebook's ``python3`` kernel,
   installing ipykernel into it first when it has none.

On failure it prints the details on stderr, then ``BINDER-ERROR: <a sentence
a user can act on>`` as the last line, and exits with 1; the worker stores
that sentence as the build's error. The sentence goes to stdout: Docker's
classic builder wraps a step's stderr in colour codes, which would hide the
prefix from the worker.

The pip step runs the installer command the worker hands over as JSON
(``--installer``: uv pip or pip, with the farm's index already in it; the
word ``{python}`` stands for the environment's Python). Downloads are kept
in ``--cache-dir`` (a build cache shared by builds on the host). A prefix
that holds a venv (the base image's ``/srv/env``) is emptied first.

With ``--python X.Y`` and no environment file, the environment is that
Python alone, from the ``--channel`` channels (runtime.txt's python-X.Y).

Usage::

    conda_env.py [ENVIRONMENT_YML --max-bytes N] --prefix /srv/env [--installer JSON]
                 [--cache-dir DIR] [--python X.Y --channel URL ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

try:
    from workers.repo_yaml import RepoYamlError, load_repo_yaml, read_repo_file, shorten
except ImportError:  # inside a build: the loader is shipped beside this script
    from repo_yaml import (  # type: ignore[no-redef]
        RepoYamlError,
        load_repo_yaml,
        read_repo_file,
        shorten,
    )

if TYPE_CHECKING:
    from rattler import RepoDataRecord

CHANNEL_ALIAS = "https://conda.anaconda.org"
#: What conda means by ``defaults``.
DEFAULT_CHANNELS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
#: A bracket, or a ``url`` key in brackets with its value, as rattler writes a spec back.
_URL_TOKEN = re.compile(r'[\[\]]|(?<=[\[ ,])url="([^"]*)"')
#: Used when ``environment.yml`` lists no channels (as Binder does).
FALLBACK_CHANNELS = ("conda-forge",)
SYSTEM_PYTHON = "/usr/bin/python3"
#: Makes a prefix a venv over the system Python, with Jupyter's commands
#: (``workers/base_image/make-env-venv``, installed by the base image).
MAKE_ENV_VENV = "/usr/local/libexec/binder/make-env-venv"
DEFAULT_INSTALLER = ("{python}", "-m", "pip", "install", "--disable-pip-version-check")
ERROR_PREFIX = "BINDER-ERROR: "

_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$")
# pip lines that refer to files of the repository (``-r other.txt``, ``-e .``,
# local paths): pip then needs the whole repository, not only environment.yml.
_NO_CANDIDATES = re.compile(r"^No candidates were found for (.+?)(?: \*)?$")
_PIP_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


class EnvironmentFileError(Exception):
    """The environment cannot be built; the message is a sentence for the user."""


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an ``environment.yml`` asks for."""

    channels: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default=())


# Reading environment.yml (pure Python: the worker uses this part too).

def _kind(value: Any) -> str:
    """What a YAML value is, in words (the value itself may be huge)."""
    kinds = ((bool, "a boolean"), (list, "a list"), (dict, "a mapping"), (type(None), "null"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a value")


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise EnvironmentFileError(f"environment.yml: `{what}` must be a list.")
    result = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise EnvironmentFileError(
                f"environment.yml: every entry of `{what}` must be a text, not {_kind(item)}.")
        result.append(str(item).strip())
    return [item for item in result if item]


def _split_dependencies(value: Any) -> tuple[list[str], list[str]]:
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise EnvironmentFileError("environment.yml: `dependencies` must be a list.")
    conda: list[str] = []
    pip: list[str] = []
    for item in value:
        if isinstance(item, dict):
            if set(item) != {"pip"}:
                keys = ", ".join(str(key) for key in item)
                raise EnvironmentFileError(
                    f"environment.yml: unknown subsection `{keys}` in `dependencies`; "
                    "only `pip:` is supported.")
            pip += _string_list(item["pip"], "pip")
        else:
            conda += _string_list([item], "dependencies")
    return conda, pip


def parse_environment(text: str | bytes) -> EnvironmentSpec:
    """The spec of an ``environment.yml`` (read within its cap); raises
    ``EnvironmentFileError`` when invalid."""
    try:
        data = load_repo_yaml(text, "environment.yml")
    except RepoYamlError as exc:
        raise EnvironmentFileError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EnvironmentFileError("environment.yml must be a mapping with `channels` and "
                                   "`dependencies`.")
    channels = _string_list(data.get("channels"), "channels")
    for channel in channels:
        channel_urls(channel)  # validates
    conda, pip = _split_dependencies(data.get("dependencies"))
    known = {"name", "prefix", "channels", "dependencies"}
    ignored = tuple(sorted(str(key) for key in data if key not in known))
    return EnvironmentSpec(tuple(channels), tuple(conda), tuple(pip), ignored)


def channel_urls(channel: str) -> list[str]:
    """The URLs a channel entry stands for (``nodefaults`` stands for none)."""
    if channel == "nodefaults":
        return []
    if channel == "defaults":
        return list(DEFAULT_CHANNELS)
    if "://" in channel:
        try:
            scheme = urlsplit(channel).scheme
        except ValueError:  # such as an unclosed [ of an IPv6 address
            scheme = ""
        if scheme not in {"http", "https"}:
            raise EnvironmentFileError(f"environment.yml: channel {shorten(channel)} is not an "
                                       "http(s) URL; use a channel name or an https:// URL.")
        return [channel.rstrip("/")]
    if not _CHANNEL_NAME.match(channel):
        raise EnvironmentFileError(f"environment.yml: {shorten(channel)!r} is not a channel "
                                   "name or URL "
                                   "(for example conda-forge or https://conda.anaconda.org/"
                                   "conda-forge).")
    return [f"{CHANNEL_ALIAS}/{channel}"]


def resolve_channels(spec: EnvironmentSpec, farm_channels: Sequence[str] = ()) -> list[str]:
    """Channel URLs in priority order, without repeats: the farm's when it names any (they
    replace the file's own), else the file's."""
    names = tuple(farm_channels) or spec.channels or FALLBACK_CHANNELS
    urls: list[str] = []
    for name in names:
        urls += [url for url in channel_urls(name) if url not in urls]
    return urls


# Doing it (inside the build).

def say(message: str) -> None:
    """One progress line of the build log."""
    print(message, flush=True)


def package_url(written: str) -> str | None:
    """The URL a spec downloads its package from (``https://host/p-1.0-0.conda``,
    ``p[url=...]``), from the spec as rattler writes it back; ``None`` for none.

    One pass over the text: a search for ``[``, then anything, then ``url="``
    tries the rest of the text again from every ``[``, minutes of work on a spec
    of a few hundred thousand of them.
    """
    inside = False
    for token in _URL_TOKEN.finditer(written):
        if token.group(0) in ("[", "]"):
            inside = token.group(0) == "["
        elif inside:
            return token.group(1)
    return None


def match_specs(specs: Sequence[str]) -> list[Any]:
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    result = []
    for text in specs:
        try:
            spec = MatchSpec(text, strict=False)
        except InvalidMatchSpecError as exc:
            raise EnvironmentFileError(f"environment.yml: {shorten(text)!r} is not a valid conda "
                                       f"package spec: {shorten(_one_line(str(exc)), 200)}."
                                       ) from exc
        url = package_url(str(spec))
        if url and not url.lower().startswith("file:"):
            raise EnvironmentFileError(
                f"environment.yml: {shorten(text)!r} downloads a package from a URL; this farm "
                "installs conda packages only from its own channels. List the package by name.")
        result.append(spec)
    return result


#: The R kernel's package: it registers the kernel in the environment's share/jupyter.
R_KERNEL = "r-irkernel"


def with_r_kernel(specs: list[Any]) -> list[Any]:
    """``specs`` and, when they name R packages (``r-...``) but not the R kernel,
    ``r-irkernel``, as repo2docker adds it."""
    from rattler import MatchSpec

    names = {str(spec.name.normalized) for spec in specs if spec.name is not None}
    if R_KERNEL in names or not any(name.startswith("r-") for name in names):
        return specs
    say(f"the environment installs R packages: adding {R_KERNEL}, so that notebooks run R")
    return [*specs, MatchSpec(R_KERNEL)]


def _one_line(text: str) -> str:
    return " ".join(line.strip(" └─├│") for line in text.strip().splitlines()).rstrip(".")


async def solve(spec: EnvironmentSpec, channels: list[str], cache: Path) -> list[RepoDataRecord]:
    """The records of the solved environment."""
    from rattler import Channel, Gateway, Subdir, VirtualPackage
    from rattler import solve as rattler_solve
    from rattler.exceptions import GatewayError, SolverError

    specs = with_r_kernel(match_specs(spec.conda))
    if not specs:
        return []
    platform = Subdir.current()
    say(f"solving {len(specs)} conda dependencies for {platform} from: {', '.join(channels)}")
    try:
        return await rattler_solve(
            [Channel(url) for url in channels], specs,
            gateway=Gateway(cache_dir=cache / "repodata"),
            platforms=[platform, Subdir("noarch")],
            virtual_packages=VirtualPackage.detect(),
            add_pip_as_python_dependency=bool(spec.pip),
            timestamp_policy="allow-missing",
        )
    except SolverError as exc:
        reason = _one_line(str(exc)).removeprefix("Cannot solve the request because of: ")
        reason = _NO_CANDIDATES.sub(r"nothing provides \1", reason)
        print(str(exc), file=sys.stderr)
        raise EnvironmentFileError(
            f"conda could not solve the environment: {reason}. Check the package names and "
            f"versions in environment.yml against its channels ({', '.join(channels)}).") from exc
    except GatewayError as exc:
        print(str(exc), file=sys.stderr)
        raise EnvironmentFileError(f"conda could not read the channels of environment.yml: "
                                   f"{_one_line(str(exc))}. Check the channel names and "
                                   "URLs.") from exc


async def install(records: list[RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Install ``records`` into ``prefix``."""
    from rattler import InstallerReporter
    from rattler import install as rattler_install

    class Reporter(InstallerReporter):
        """One line per package fetched; a warning when a post-link script fails."""

        def on_populate_cache_start(self, operation: int, package_name: str) -> int:
            say(f"  fetching {package_name}")
            return operation

        def on_post_link_complete(self, index: int, success: bool) -> None:
            if not success:
                say("  warning: a package's post-link script failed")

    say(f"installing {len(records)} conda packages into {prefix}:")
    for record in sorted(records, key=lambda r: r.name.normalized):
        say(f"  {record.name.normalized} {record.version} {record.build} ({record.channel})")
    try:
        await rattler_install(records, prefix, cache_dir=cache / "pkgs", show_progress=False,
                              execute_link_scripts=True,
                              # the protocol's other methods are no-ops, not abstract
                              reporter=Reporter())  # type: ignore[abstract]
    except Exception as exc:  # rattler raises several unrelated types here
        print(str(exc), file=sys.stderr)
        raise EnvironmentFileError(f"installing the conda packages failed: "
                                   f"{_one_line(str(exc))}.") from exc


def ensure_python(prefix: Path) -> Path:
    """The prefix's Python; makes the prefix a venv over the system Python if it has none,
    so that ``python``, ``pip``, the notebooks' kernel and Jupyter's server extensions
    installed into it work in every environment, as in the base image's (whose
    ``/srv/env`` this one replaces)."""
    python = prefix / "bin" / "python"
    if python.exists():
        return python
    say(f"the conda environment has no Python: making {prefix} a venv over {SYSTEM_PYTHON}")
    if Path(MAKE_ENV_VENV).exists():
        command = [MAKE_ENV_VENV, str(prefix)]
    else:  # an operator's base image (BINDER_BASE_IMAGE) without it: the venv alone
        command = [SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(prefix)]
    _run(command,
         "making a venv for the environment's Python failed.")
    return python


def _run(command: list[str], failure: str) -> None:
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise EnvironmentFileError(failure)


def pip_install(python: Path, requirements: Sequence[str], workdir: Path,
                installer: Sequence[str] = DEFAULT_INSTALLER) -> None:
    """Install ``requirements`` (lines of a requirements file) into ``python``'s environment.

    The lines go through a requirements file next to environment.yml, as
    conda does, so options and relative paths in them work the same way.
    """
    command = [str(python) if word == "{python}" else word for word in installer]
    say(f"installing {len(requirements)} pip packages with {' '.join(command[:3])}")
    handle, name = tempfile.mkstemp(prefix="condaenv.", suffix=".requirements.txt", dir=workdir)
    try:
        with os.fdopen(handle, "w") as file:
            file.write("\n".join(requirements) + "\n")
        _stream_pip([*command, "-r", name], workdir)
    finally:
        os.unlink(name)


def _stream_pip(command: list[str], workdir: Path) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_ROOT_USER_ACTION": "ignore"}
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace")
    assert process.stdout is not None
    missing = None
    for line in process.stdout:
        say(line.rstrip("\n"))
        match = _PIP_NOT_FOUND.search(line)
        if match:
            missing = match.group(1)
    if process.wait() == 0:
        return
    if missing:
        raise EnvironmentFileError(f"pip could not install {missing} from the pip: section of "
                                   "environment.yml: no matching distribution found.")
    raise EnvironmentFileError(f"pip could not install the pip: section of environment.yml "
                               f"(exit code {process.returncode}); the lines above say why.")


def _imports_ipykernel(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import ipykernel"], check=False,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def register_kernel(prefix: Path, installer: Sequence[str] = DEFAULT_INSTALLER) -> None:
    """Make the environment's Python the notebook's ``python3`` kernel, installing
    ipykernel into it with ``installer`` when it has none (environments rarely name
    it, and without it notebooks would run the base image's Python, which has none of
    this environment's packages). An ipykernel the farm's index cannot give this
    Python leaves the base image's kernel, and the log says so."""
    python = prefix / "bin" / "python"
    if not python.exists():
        say("the environment has no Python: notebooks keep the base image's Python 3 kernel")
        return
    if not _imports_ipykernel(python):
        command = [str(python) if word == "{python}" else word for word in installer]
        say(f"installing ipykernel into {prefix}, so that notebooks run its Python")
        try:
            _stream_pip([*command, "ipykernel"], prefix)
        except EnvironmentFileError:
            say(f"WARNING: ipykernel could not be installed for {python} (the lines above "
                "say why): notebooks keep the base image's Python 3 kernel, without this "
                "environment's packages; add ipykernel to the environment to use it in "
                "notebooks")
            return
    say(f"registering {python} as the python3 kernel")
    _run([str(python), "-m", "ipykernel", "install", "--sys-prefix",
          "--name", "python3", "--display-name", "Python 3 (ipykernel)"],
         "registering the environment's Python as the notebook kernel failed.")


def clear_venv(prefix: Path) -> None:
    """Empty ``prefix`` when it holds a venv (the base image's), for the conda environment."""
    if not (prefix / "pyvenv.cfg").exists():
        return
    say(f"replacing the venv in {prefix} with the conda environment")
    for child in prefix.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def build(env_file: Path | None, prefix: Path, installer: Sequence[str] = DEFAULT_INSTALLER,
          cache: Path | None = None, python: str | None = None,
          farm_channels: Sequence[str] = (), max_bytes: int = 0) -> None:
    """Everything: read, solve, install, pip, kernel. Raises ``EnvironmentFileError``.

    The file is read only up to ``max_bytes`` (the worker's cap for it);
    ``farm_channels`` replace the file's channels; without a file, ``python``
    (X.Y) alone is installed from them.
    """
    if env_file is None:
        if not python:
            raise EnvironmentFileError("nothing to install: no environment.yml and no Python.")
        spec = EnvironmentSpec(conda=(f"python {python}.*",))
    else:
        try:
            data = read_repo_file(env_file, "environment.yml", max_bytes)
        except RepoYamlError as exc:
            raise EnvironmentFileError(str(exc)) from None
        except OSError as exc:
            raise EnvironmentFileError(
                f"environment.yml cannot be read: {exc.strerror}.") from exc
        spec = parse_environment(data)
    if spec.ignored:
        say(f"environment.yml: ignoring {', '.join(spec.ignored)} (only channels, "
            "dependencies and pip: are used)")
    channels = resolve_channels(spec, farm_channels)
    if farm_channels:
        say(f"using this farm's channels: {', '.join(farm_channels)}")
    elif not spec.channels:
        say(f"environment.yml lists no channels: using {', '.join(FALLBACK_CHANNELS)}")
    if not channels and spec.conda:
        raise EnvironmentFileError("environment.yml lists dependencies but no channels to "
                                   "take them from; add a channel such as conda-forge.")
    prefix.mkdir(parents=True, exist_ok=True)
    clear_venv(prefix)
    scratch = None
    if cache is None:
        scratch = cache = Path(tempfile.mkdtemp(prefix="rattler-"))
    try:
        try:
            records = asyncio.run(solve(spec, channels, cache))
        except EnvironmentFileError as exc:
            if env_file is None and str(exc).startswith("conda could not solve"):
                raise EnvironmentFileError(
                    f"runtime.txt asks for Python {python}, which the conda channels "
                    f"({', '.join(channels)}) do not have; ask for a Python they have, or "
                    "leave runtime.txt out for the base image's Python.") from None
            raise
        if records:
            asyncio.run(install(records, prefix, cache))
        else:
            say("environment.yml lists no conda dependencies")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    interpreter = ensure_python(prefix)
    if spec.pip:
        assert env_file is not None
        pip_install(interpreter, spec.pip, env_file.parent, installer)
    register_kernel(prefix, installer)
    say(f"the environment in {prefix} is ready")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("env_file", type=Path, nargs="?", help="the environment.yml")
    parser.add_argument("--prefix", type=Path, required=True, help="where to install")
    parser.add_argument("--installer", type=json.loads, default=list(DEFAULT_INSTALLER),
                        help="JSON list: the install command of the pip: section")
    parser.add_argument("--cache-dir", type=Path, default=None, help="package cache")
    parser.add_argument("--python", default=None, help="X.Y: install this Python only")
    parser.add_argument("--channel", action="append", default=[], dest="channels",
                        help="a channel of the farm (repeatable); replaces the file's channels")
    parser.add_argument("--max-bytes", type=int, default=0,
                        help="the most of ENVIRONMENT_YML read (the worker's cap for it)")
    args = parser.parse_args(argv)
    if args.env_file is not None and args.max_bytes <= 0:
        parser.error("an ENVIRONMENT_YML needs --max-bytes")
    try:
        build(args.env_file, args.prefix, args.installer, args.cache_dir, args.python,
              args.channels, args.max_bytes)
    except EnvironmentFileError as exc:
        report_error(str(exc))
        return 1
    except Exception as exc:  # a bug or an unforeseen state: keep the details in the log
        traceback.print_exc()
        report_error("setting up the conda environment failed unexpectedly: "
                     f"{_one_line(str(exc)) or type(exc).__name__}.")
        return 1
    return 0


def report_error(sentence: str) -> None:
    """The build's error, as the last line of the step's output (see the module doc)."""
    sys.stderr.flush()
    print(f"{ERROR_PREFIX}{sentence}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
