"""A local CRAN-like repository with hand-made R source packages, for hermetic tests.

``make_cran(root, "2024-01-01", [RPackage(...)])`` writes
``root/2024-01-01/src/contrib/`` with each package's source tarball and the
``PACKAGES`` index R's ``install.packages`` reads; serve ``root`` and give
the farm ``<url>/{date}`` as ``BINDER_CRAN_URL``, as a dated snapshot
service (such as Posit's) is laid out.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RPackage:
    """A pure-R source package: ``functions`` maps function names to their R bodies."""

    name: str
    version: str = "0.1.0"
    functions: dict[str, str] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.name}_{self.version}.tar.gz"

    def description(self) -> str:
        return (f"Package: {self.name}\nVersion: {self.version}\nTitle: A Test Package\n"
                "Description: Made by the binder-build tests.\nLicense: MIT\n"
                "Author: binder-build tests\nMaintainer: binder-build tests <tests@example.org>\n"
                "NeedsCompilation: no\n")

    def files(self) -> dict[str, str]:
        code = "".join(f"{name} <- function() {body}\n" for name, body in self.functions.items())
        exports = "".join(f"export({name})\n" for name in self.functions)
        return {"DESCRIPTION": self.description(), "NAMESPACE": exports,
                f"R/{self.name}.R": code}


def build_source(package: RPackage) -> bytes:
    """The ``.tar.gz`` source archive R CMD INSTALL takes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, text in sorted(package.files().items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{package.name}/{path}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_cran(root: Path, snapshot: str, packages: list[RPackage]) -> Path:
    """Write the snapshot ``snapshot`` of a CRAN-like repository under ``root``."""
    contrib = root / snapshot / "src" / "contrib"
    contrib.mkdir(parents=True, exist_ok=True)
    entries = []
    for package in packages:
        (contrib / package.file_name).write_bytes(build_source(package))
        entries.append(f"Package: {package.name}\nVersion: {package.version}\n"
                       "NeedsCompilation: no\n")
    index = "\n".join(entries)
    (contrib / "PACKAGES").write_text(index)
    (contrib / "PACKAGES.gz").write_bytes(gzip.compress(index.encode()))
    return root
