"""A PEP 503 "simple" package index on disk, with tiny wheels made by hand."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(target_dir: Path, name: str, version: str, module_source: str) -> Path:
    """A pure-Python wheel of one module ``name`` (with ``-`` as ``_``)."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}.py": module_source.encode(),
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\n"
                                  f"Version: {version}\n").encode(),
        f"{dist_info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: binder-build-tests\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = [_record_line(path, data) for path, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    target_dir.mkdir(parents=True, exist_ok=True)
    wheel = target_dir / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def make_simple_index(root: Path, packages: dict[str, list[tuple[str, str]]]) -> Path:
    """``root/simple/<name>/`` pages for {name: [(version, module source)]}; returns root."""
    simple = root / "simple"
    links = []
    for name, versions in packages.items():
        project = simple / name
        anchors = []
        for version, source in versions:
            wheel = make_wheel(project, name, version, source)
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            anchors.append(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a>')
        (project / "index.html").write_text("<html><body>" + "".join(anchors) + "</body></html>")
        links.append(f'<a href="{name}/">{name}</a>')
    (simple / "index.html").write_text("<html><body>" + "".join(links) + "</body></html>")
    return root
