"""A local conda channel made of hand-made ``noarch`` packages, for hermetic tests.

``make_channel(root, [CondaPackage(...)])`` writes ``root/noarch/*.tar.bz2``,
``root/noarch/repodata.json`` and an empty ``root/linux-64/repodata.json``:
everything a conda client (py-rattler, conda, mamba) needs to read the
directory as a channel, from the file system or served over HTTP (see
``tests.support.static_http.serve_directory``).

Records carry no ``timestamp``: solve with ``timestamp_policy="allow-missing"``.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

#: Subdirs written by ``make_channel``; linux-64 stays empty.
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

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    def index_json(self) -> dict[str, object]:
        return {
            "name": self.name, "version": self.version, "build": self.build,
            "build_number": self.build_number, "depends": list(self.depends),
            "license": "BSD-3-Clause", "noarch": "generic", "subdir": "noarch",
            "arch": None, "platform": None,
        }


def script_package(name: str, output: str, version: str = "1.0",
                   depends: tuple[str, ...] = ()) -> CondaPackage:
    """A package installing ``bin/NAME``, a shell script that prints ``output``."""
    script = f"#!/bin/sh\necho '{output}'\n".encode()
    return CondaPackage(name=name, version=version, depends=depends,
                        files={f"bin/{name}": script})


def _mode(path: str) -> int:
    return 0o755 if path.startswith("bin/") else 0o644


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def build_package(package: CondaPackage) -> bytes:
    """The ``.tar.bz2`` archive of ``package`` (info/ metadata with real sha256s)."""
    paths = [
        {"_path": path, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
         "size_in_bytes": len(data)}
        for path, data in sorted(package.files.items())
    ]
    metadata = {
        "info/index.json": json.dumps(package.index_json(), indent=2).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2).encode(),
        "info/files": "".join(f"{path}\n" for path in sorted(package.files)).encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in metadata.items():
            _add(tar, name, data)
        for path, data in sorted(package.files.items()):
            _add(tar, path, data, _mode(path))
    return bz2.compress(buffer.getvalue())


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
    records = {}
    for package in packages:
        archive = build_package(package)
        (root / "noarch" / package.file_name).write_bytes(archive)
        records[package.file_name] = _record(package, archive)
    for subdir in SUBDIRS:
        repodata = {"info": {"subdir": subdir}, "packages": records if subdir == "noarch" else {},
                    "packages.conda": {}, "repodata_version": 1}
        (root / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1))
    return root
