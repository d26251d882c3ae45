"""Real wheels for the scientific scenario, served from a loopback index.

Builds cannot reach PyPI; the host can. ``ensure_wheelhouse`` runs ``pip
download`` once for the image's Python (Debian bookworm: CPython 3.11,
manylinux x86_64) and keeps the files; ``write_simple_index`` lays them out
as a PEP 503 "simple" index that ``tests.support.static_http`` serves.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

#: binder-examples/requirements, pinned to versions with CPython 3.11 wheels.
SCIENTIFIC = ("numpy==1.26.4", "pandas==2.2.3", "scipy==1.13.1", "matplotlib==3.8.4",
              "seaborn==0.13.2")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def ensure_wheelhouse(target: Path, requirements: tuple[str, ...] = SCIENTIFIC) -> list[Path]:
    """The wheels of ``requirements`` and their dependencies, downloaded once."""
    stamp = target / ".requirements"
    wanted = "\n".join(requirements)
    if stamp.is_file() and stamp.read_text() == wanted and any(target.glob("*.whl")):
        return sorted(target.glob("*.whl"))
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311", "-d", str(target)]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    subprocess.run([*argv, *requirements], check=True, env={**os.environ, "PIP_CONSTRAINT": ""})
    stamp.write_text(wanted)
    return sorted(target.glob("*.whl"))


def project_name(wheel: Path) -> str:
    """PEP 503 normalized project name of a wheel file."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()


def write_simple_index(root: Path, wheels: list[Path]) -> Path:
    """``root/simple/<project>/index.html`` pages linking ``root/packages/*.whl``."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "packages").mkdir(parents=True)
    projects: dict[str, list[Path]] = defaultdict(list)
    for wheel in wheels:
        linked = root / "packages" / wheel.name
        os.link(wheel, linked) if _same_device(wheel, root) else shutil.copy(wheel, linked)
        projects[project_name(wheel)].append(linked)
    for project, files in projects.items():
        links = "".join(
            f'<a href="../../packages/{html.escape(f.name)}#sha256={_sha256(f)}">'
            f"{html.escape(f.name)}</a><br>\n" for f in files)
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    return root


def _same_device(path: Path, root: Path) -> bool:
    return path.stat().st_dev == root.stat().st_dev


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
