"""``Pipfile.lock`` (preferred) or ``Pipfile``: pipenv's files, installed without pipenv.

The worker turns the packages (default and develop, as ``pipenv install
--dev`` does in repo2docker) into a requirements file: a lock's exact pins
with their hashes, or a Pipfile's specifiers. It goes in the context under
``.binder-build/`` (with each entry's markers, its marker keys such as
``sys_platform = "== 'win32'"`` included, as pipenv reads them) and is
installed with the farm's Python installer from
the farm's index: a ``[[source]]`` of the repository is not used, and a
``git`` or ``file`` entry naming where to download a package is refused as
such a line of requirements.txt is (``workers/package_index.py``).
``[requires]`` asks for a Python as repo2docker reads it (``python_full_version``, then
``python_version``; ``3`` alone for the base image's; a value that is no version for
the base image's too), as runtime.txt would. A
``path`` is read from the Pipfile's folder, as pipenv reads it.
"""

from __future__ import annotations

import json
import posixpath
import re
import tomllib
from typing import Any

from common.errors import BuildFailure
from workers.buildpacks.base import ENV_PYTHON, BuildInputs, BuildPack, Install, staged
from workers.buildpacks.installers import python_install
from workers.buildpacks.runtime import MAJOR_PYTHONS
from workers.index_proxy import without_credentials
from workers.package_index import check_generated_line, sources_replaced
from workers.repo_yaml import shorten

REQUIREMENTS = "Pipfile.requirements.txt"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SPECIFIER = re.compile(r"^(\*|(===?|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
                        r"(\s*,\s*(===?|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)$")
#: A few ASCII digits each: Python turns no more than 4300 digits into an integer.
_PYTHON_VERSION = re.compile(r"^(\d{1,4})(?:\.(\d{1,4}))?")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: PEP 508's marker variables, which pipenv reads as keys of a package's entry.
MARKER_KEYS = ("os_name", "sys_platform", "platform_machine", "platform_python_implementation",
               "platform_release", "platform_system", "platform_version", "python_version",
               "python_full_version", "implementation_name", "implementation_version")


class PipfileError(BuildFailure):
    pass


def _requirement(name: str, entry: Any, source: str, locked: bool) -> tuple[str, bool]:
    """One requirements line and whether it refers to the repository's files.

    Every value is the repository's: the line must read as this one requirement
    (``check_generated_line``), never as a pip option, a second line or a download
    URL.
    """
    line, local = _requirement_line(name, entry, source, locked)
    check_generated_line(line, f"{source} package {shorten(name, 60)}")
    return line, local


def _requirement_line(name: str, entry: Any, source: str, locked: bool) -> tuple[str, bool]:
    """(the line, whether it refers to the repository's files)."""
    if not _NAME.match(name):
        raise PipfileError(f"{source}: `{name[:60]}` is not a package name.")
    if isinstance(entry, str):
        entry = {"version": entry}
    if not isinstance(entry, dict):
        raise PipfileError(f"{source}: the entry of {name} must be a version or a table.")
    extras = entry.get("extras") or []
    if not isinstance(extras, list) or not all(isinstance(e, str) and _NAME.match(e)
                                               for e in extras):
        raise PipfileError(f"{source}: the extras of {name} must be a list of names.")
    requirement = name + (f"[{','.join(extras)}]" if extras else "")
    if "path" in entry:
        path = str(entry["path"])
        # pipenv reads a path from the Pipfile's folder (repo2docker runs it there); the
        # install runs in REPO_DIR, so the path is joined to that folder.
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if path.startswith(("/", "~")) or joined == ".." or joined.startswith("../"):
            raise PipfileError(f"{source}: {name} points outside the repository ({path[:60]}).")
        if path.startswith("-") or "://" in path:
            raise PipfileError(f"{source}: the path of {name} ({path[:60]}) is not a path in "
                               "the repository.")
        editable = "-e " if entry.get("editable") else ""
        return f"{editable}{joined if joined == '.' else './' + joined}", True
    if "git" in entry or "file" in entry:
        # Written as requirements.txt would say it, so that check_generated_line holds
        # it to the same rule: a download URL is refused, a file: URL passes.
        key = "git" if "git" in entry else "file"
        url = str(entry[key])
        if not _URL.match(url):
            raise PipfileError(f"{source}: the {key} of {name} ({url[:60]}) must be a URL; "
                               "name a path in the repository with path = instead.")
        ref = f"@{entry['ref']}" if entry.get("ref") and key == "git" else ""
        prefix = "git+" if key == "git" else ""
        return f"{requirement} @ {prefix}{url}{ref}", False
    version = str(entry.get("version", "*")).strip()
    if not _SPECIFIER.match(version):
        raise PipfileError(f"{source}: the version of {name} ({version[:60]}) is not a "
                           "version specifier such as ==1.0 or >=2.")
    line = requirement + ("" if version == "*" else version)
    markers = _markers(entry)
    if markers:
        line += f"; {markers}"
    if locked:
        hashes = entry.get("hashes") or []
        if not isinstance(hashes, list):
            raise PipfileError(f"{source}: the hashes of {name} must be a list.")
        line += "".join(f" --hash={digest}" for digest in hashes
                        if isinstance(digest, str) and re.match(r"^sha256:[0-9a-f]{64}$", digest))
    return line, False


def _markers(entry: dict[str, Any]) -> str:
    """The entry's environment markers: its ``markers`` and each PEP 508 marker key
    (``sys_platform = "== 'win32'"``), joined as pipenv joins them."""
    found = [str(entry["markers"]).strip()] if isinstance(entry.get("markers"), str) else []
    found += [f"{key} {str(entry[key]).strip()}" for key in MARKER_KEYS
              if isinstance(entry.get(key), str)]
    found = [marker for marker in found if marker]
    return found[0] if len(found) == 1 else " and ".join(f"({marker})" for marker in found)


def _load(text: str, source: str) -> Any:
    """The data of a Pipfile (TOML) or Pipfile.lock (JSON); ``PipfileError`` when it is
    not valid, including nested deeper than the parsers recurse (``RecursionError``)."""
    locked = source.endswith(".lock")
    try:
        return json.loads(text) if locked else tomllib.loads(text)
    except RecursionError:
        raise PipfileError(f"{source} is not valid {'JSON' if locked else 'TOML'}: its "
                           "values are nested too deep.") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise PipfileError(f"{source} is not valid {'JSON' if locked else 'TOML'}: "
                           f"{str(exc)[:200]}") from exc


def declared_sources(text: str, source: str) -> list[str]:
    """The package indexes the file names (``[[source]]``, a lock's ``_meta.sources``)."""
    try:
        data = _load(text, source)
    except PipfileError:
        return []
    if not isinstance(data, dict):
        return []
    meta = data.get("_meta")
    sources = (meta.get("sources") if isinstance(meta, dict) else None) \
        if source.endswith(".lock") else data.get("source")
    if not isinstance(sources, list):
        return []
    return [str(entry["url"]) for entry in sources if isinstance(entry, dict) and "url" in entry]


def requirements(text: str, source: str) -> tuple[list[str], bool, str | None]:
    """(requirements lines, whether they need the repository, python version X.Y)."""
    locked = source.endswith(".lock")
    data = _load(text, source)
    if not isinstance(data, dict):
        raise PipfileError(f"{source} must hold a table of packages.")
    sections = ("default", "develop") if locked else ("packages", "dev-packages")
    lines, needs_repo = [], False
    for section in sections:
        packages = data.get(section) or {}
        if not isinstance(packages, dict):
            raise PipfileError(f"{source}: `{section}` must be a table of packages.")
        for name, entry in packages.items():
            line, local = _requirement(str(name), entry, source, locked)
            lines.append(line)
            needs_repo = needs_repo or local
    meta = (data.get("_meta") or {}) if locked else data
    if not isinstance(meta, dict):
        raise PipfileError(f"{source}: `_meta` must be a table.")
    return lines, needs_repo, _python_of(meta.get("requires"))


def _python_of(requires: Any) -> str | None:
    """The Python (X.Y) a ``[requires]`` table asks for, read as repo2docker reads it:
    ``python_full_version`` first, then ``python_version``; a major version alone
    stands for that major's default (``MAJOR_PYTHONS``). ``None`` (the base image's
    Python) when neither is a version, where repo2docker builds with its default."""
    if not isinstance(requires, dict):
        return None
    for key in ("python_full_version", "python_version"):
        match = _PYTHON_VERSION.match(str(requires.get(key) or "").strip())
        if match is None:
            continue
        if match.group(2) is not None:
            return f"{int(match.group(1))}.{int(match.group(2))}"
        return MAJOR_PYTHONS.get(int(match.group(1)))
    return None


class PipfileBuildPack(BuildPack):
    id = "Pipfile"
    config_file = "Pipfile"

    def _parse(self, inputs: BuildInputs) -> tuple[list[str], bool, str | None]:
        assert inputs.config_path is not None
        return requirements(inputs.read(), str(inputs.config_path))

    def check(self, inputs: BuildInputs) -> None:
        self._parse(inputs)

    def notices(self, inputs: BuildInputs) -> list[str]:
        # the log is the user's to read: the index's credentials stay on the host
        index = (without_credentials(str(inputs.config.pip_index_url))
                 if inputs.config.pip_index_url else "the installer's default index")
        note = sources_replaced(str(inputs.config_path),
                                declared_sources(inputs.read(), str(inputs.config_path)),
                                [index])
        return [note] if note else []

    def install(self, inputs: BuildInputs) -> Install:
        lines, needs_repo, python = self._parse(inputs)
        text = (f"# from {inputs.config_path}\n" + "\n".join(lines) + "\n").encode()
        result = Install(files={REQUIREMENTS: text}, python=python)
        uid = inputs.config.nb_uid
        stage = f"COPY --chown={uid}:{uid} .binder-build/{REQUIREMENTS} {staged(REQUIREMENTS)}"
        run = python_install(inputs.config, ENV_PYTHON, ["-r", staged(REQUIREMENTS)],
                             str(inputs.config_path))
        if needs_repo:
            result.after_repo = [stage, run]
        else:
            result.before_repo = [stage, run]
        return result


class PipfileLockBuildPack(PipfileBuildPack):
    id = "Pipfile.lock"
    config_file = "Pipfile.lock"

    def install(self, inputs: BuildInputs) -> Install:
        """The lock's packages, with the Python of its ``_meta.requires``, else of the
        Pipfile beside it (repo2docker reads both, the lock first)."""
        result = super().install(inputs)
        if result.python is None:
            result.python = self._pipfile_python(inputs)
        return result

    @staticmethod
    def _pipfile_python(inputs: BuildInputs) -> str | None:
        from workers.buildpacks import find_config_file  # the package imports this module

        assert inputs.config_path is not None
        try:
            path = find_config_file(inputs.checkout, inputs.checkout / inputs.config_path.parent,
                                    "Pipfile")
            data = _load(inputs.read(path), str(path)) if path is not None else None
        except BuildFailure:  # the lock is what the build installs: a Pipfile it cannot
            return None       # read only names no Python
        return _python_of(data.get("requires")) if isinstance(data, dict) else None
