"""A local conda channel made of hand-made ``noarch`` packages, for hermetic tests.

``make_channel(root, [CondaPackage(...)])`` writes ``root/noarch/*.tar.bz2``
(and ``root/linux-64/*.tar.bz2`` for platform packages) with each subdir's
``repodata.json``: everything a conda client (py-rattler, conda, mamba)
needs to read the directory as a channel, from the file system or served
over HTTP (see ``tests.support.static_http.serve_directory``).

``interpreter_package(path, version)`` packages a real CPython installation
(such as pyenv's) as a ``python`` package for ``linux-64``: text files that
hold the installation's path are marked for conda's prefix replacement, as
conda-build marks them, and the interpreter's run path is made relative, so
it works wherever it is installed.

Records carry no ``timestamp``: solve with ``timestamp_policy="allow-missing"``.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

#: Subdirs written by ``make_channel``.
SUBDIRS = ("noarch", "linux-64")


@dataclass(frozen=True)
class CondaPackage:
    """One ``noarch: generic`` package: its metadata and the files it installs.

    ``files`` maps paths relative to the environment prefix to their content;
    paths under ``bin/`` are installed executable.
    """

    name: str
    version: str = "1.0"
    build: str = "0"
    build_number: int = 0
    depends: tuple[str, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)
    #: ``noarch`` or a platform such as ``linux-64``
    subdir: str = "noarch"
    #: symbolic links: path -> target
    links: dict[str, str] = field(default_factory=dict)
    #: paths that must stay executable (besides everything under bin/)
    executables: frozenset[str] = frozenset()
    #: the build prefix baked into files, replaced by the install prefix
    prefix_placeholder: str | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    def index_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name, "version": self.version, "build": self.build,
            "build_number": self.build_number, "depends": list(self.depends),
            "license": "BSD-3-Clause", "subdir": self.subdir,
        }
        if self.subdir == "noarch":
            data.update({"noarch": "generic", "arch": None, "platform": None})
        else:
            data.update({"arch": "x86_64", "platform": "linux"})
        return data


def script_package(name: str, output: str, version: str = "1.0",
                   depends: tuple[str, ...] = ()) -> CondaPackage:
    """A package installing ``bin/NAME``, a shell script that prints ``output``."""
    script = f"#!/bin/sh\necho '{output}'\n".encode()
    return CondaPackage(name=name, version=version, depends=depends,
                        files={f"bin/{name}": script})


def _mode(package: CondaPackage, path: str) -> int:
    return 0o755 if path.startswith("bin/") or path in package.executables else 0o644


#: What a packaged interpreter leaves out: tests, the static library, IDLE, Tk, caches.
_SKIPPED = re.compile(r"(^|/)(__pycache__|test|tests|idlelib|tkinter|turtledemo|"
                      r"config-[^/]*)(/|$)|\.pth$|\.pyc$|\.a$")


def _relocatable(data: bytes, prefix: str) -> bytes:
    """An ELF file's run path into the installation, made relative to the file.

    Binary files are not prefix-replaced: the linker shares string tails
    (``3.12.1`` inside ``/root/.pyenv/versions/3.12.1``), which a replacement
    would break. Only the run path must move: ``$ORIGIN/../lib``, padded.
    """
    old = f"{prefix}/lib".encode() + b"\0"
    new = b"$ORIGIN/../lib"
    return data.replace(old, new + b"\0" * (len(old) - len(new))) if b"\0" in data else data


def interpreter_package(installation: Path, version: str) -> CondaPackage:
    """A ``python`` package for linux-64 holding the CPython installed at ``installation``."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    executables = set()
    for path in sorted(installation.rglob("*")):
        relative = path.relative_to(installation).as_posix()
        if _SKIPPED.search(relative) or relative.startswith(("share/", "include/")):
            continue
        if path.is_symlink():
            links[relative] = os.readlink(path)
        elif path.is_file():
            files[relative] = _relocatable(path.read_bytes(), str(installation))
            if path.stat().st_mode & 0o111:
                executables.add(relative)
    return CondaPackage(name="python", version=version, build="0", files=files,
                        subdir="linux-64", links=links, executables=frozenset(executables),
                        prefix_placeholder=str(installation))


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _path_entry(package: CondaPackage, path: str, data: bytes) -> dict[str, object]:
    entry: dict[str, object] = {"_path": path, "path_type": "hardlink",
                                "sha256": hashlib.sha256(data).hexdigest(),
                                "size_in_bytes": len(data)}
    placeholder = package.prefix_placeholder
    if placeholder and placeholder.encode() in data and b"\0" not in data:
        entry["prefix_placeholder"] = placeholder
        entry["file_mode"] = "text"
    return entry


def build_package(package: CondaPackage) -> bytes:
    """The ``.tar.bz2`` archive of ``package`` (info/ metadata with real sha256s)."""
    paths = [_path_entry(package, path, data) for path, data in sorted(package.files.items())]
    paths += [{"_path": path, "path_type": "softlink"} for path in sorted(package.links)]
    paths.sort(key=lambda entry: str(entry["_path"]))
    metadata = {
        "info/index.json": json.dumps(package.index_json(), indent=2).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2).encode(),
        "info/files": "".join(f"{path}\n"
                              for path in sorted({*package.files, *package.links})).encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in metadata.items():
            _add(tar, name, data)
        for path, data in sorted(package.files.items()):
            _add(tar, path, data, _mode(package, path))
        for path, target in sorted(package.links.items()):
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return bz2.compress(buffer.getvalue(), compresslevel=1)


def _record(package: CondaPackage, archive: bytes) -> dict[str, object]:
    return {
        **package.index_json(),
        "md5": hashlib.md5(archive).hexdigest(),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "size": len(archive),
    }


def make_channel(root: Path, packages: list[CondaPackage]) -> Path:
    """Write a channel holding ``packages`` under ``root``; return ``root``."""
    for subdir in SUBDIRS:
        (root / subdir).mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, object]] = {subdir: {} for subdir in SUBDIRS}
    for package in packages:
        archive = build_package(package)
        (root / package.subdir / package.file_name).write_bytes(archive)
        records[package.subdir][package.file_name] = _record(package, archive)
    for subdir in SUBDIRS:
        repodata = {"info": {"subdir": subdir}, "packages": records[subdir],
                    "packages.conda": {}, "repodata_version": 1}
        (root / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1))
    return root
