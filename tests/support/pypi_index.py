"""A local PEP 503 "simple" package index with hand-made wheels, for hermetic tests.

``make_index(root, [make_wheel("tinypkg", ...)])`` writes
``root/simple/<name>/index.html`` pages and ``root/packages/*.whl``; serve
``root`` with ``tests.support.static_http.serve_directory`` and give pip
``<url>/simple/`` as its index URL.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    """A built wheel: its distribution name, file name and bytes."""

    name: str
    file_name: str
    data: bytes


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(name: str, version: str = "0.1", modules: dict[str, str] | None = None,
               requires: tuple[str, ...] = (), requires_python: str = "") -> Wheel:
    """A pure-Python ``py3-none-any`` wheel.

    ``modules`` maps paths inside the wheel (``tinypkg/__init__.py``) to their
    source; by default the wheel holds one package ``NAME`` whose ``VALUE``
    is ``"NAME VERSION"``.
    """
    module = name.replace("-", "_")
    modules = modules or {f"{module}/__init__.py": f'VALUE = "{name} {version}"\n'}
    dist_info = f"{module}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {req}\n" for req in requires),
                        f"Requires-Python: {requires_python}\n" if requires_python else ""])
    files = {path: text.encode() for path, text in modules.items()}
    files[f"{dist_info}/METADATA"] = metadata.encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: binder-build-tests\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    file_name = f"{module}-{version}-py3-none-any.whl"
    return Wheel(name=name, file_name=file_name, data=_zip(files))


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def wheels_in(folder: Path) -> list[Wheel]:
    """The wheel files of ``folder`` (a wheelhouse pip downloaded), for ``make_index``."""
    result = []
    for path in sorted(folder.glob("*.whl")):
        name = path.name.split("-", 1)[0]
        result.append(Wheel(name=name, file_name=path.name, data=path.read_bytes()))
    return result


def make_index(root: Path, wheels: list[Wheel]) -> Path:
    """Write a simple index of ``wheels`` under ``root``; return ``root``."""
    (root / "packages").mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Wheel]] = {}
    for wheel in wheels:
        (root / "packages" / wheel.file_name).write_bytes(wheel.data)
        projects.setdefault(normalize(wheel.name), []).append(wheel)
    for project, files in projects.items():
        links = "".join(
            f'<a href="../../packages/{html.escape(w.file_name)}#sha256='
            f'{hashlib.sha256(w.data).hexdigest()}">{html.escape(w.file_name)}</a><br>\n'
            for w in files)
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    names = "".join(f'<a href="{p}/">{p}</a><br>\n' for p in sorted(projects))
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{names}"
                                                "</body></html>\n")
    return root
