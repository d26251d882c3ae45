"""A non-editable install (what the farm's own image does) finds everything it needs.

The package is installed with ``pip install --no-deps .`` into a fresh
virtual environment whose dependencies come from the test's own
environment (a ``.pth`` line), so nothing is downloaded. It runs from a
directory outside the source tree, so only the installed copy can be
imported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from tests.support.farm import free_port, wait_http

SOURCE = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding a regular (not editable) install of binder-build."""
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies: this environment's packages, reached without installing them.
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build_dir = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-build-isolation", str(SOURCE)],
                   check=True, cwd=build_dir, env={**os.environ, "TMPDIR": str(build_dir)})
    return venv


def run(venv: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "binder-build"), *args], cwd=venv.parent,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_the_installed_copy_is_the_one_imported(installed: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "import workers, api, common; print(workers.__file__, api.__file__, common.__file__)"],
        check=True, capture_output=True, text=True, cwd=installed.parent).stdout.split()
    assert all(path.startswith(str(installed)) for path in where), where


def test_installed_program_runs_and_finds_its_package_data(installed: Path,
                                                           services: None) -> None:
    helped = run(installed, "up", "--help")
    assert helped.returncode == 0 and "Run the whole farm" in helped.stdout
    # Every file of the recipe is package data of the installed copy, as in the source tree.
    for name in ("Dockerfile", "requirements.in", "wheels.lock"):
        installed_text = subprocess.run(
            [str(installed / "bin" / "python"), "-c",
             "from workers.base_image import RECIPE_DIR;"
             f"print((RECIPE_DIR / {name!r}).read_text())"],
            check=True, capture_output=True, text=True, cwd=installed.parent).stdout
        assert installed_text.strip() == (SOURCE / "workers/base_image" / name).read_text().strip()
    # The recipe's hash, read from the installed package data, matches the image the
    # session built from the source tree: the base image is up to date, not rebuilt.
    base = run(installed, "base-image", timeout=600)
    assert base.returncode == 0, base.stderr[-2000:]
    assert "is up to date" in base.stdout


def test_installed_api_serves_health_and_its_pages(installed: Path, farm_env: dict[str, str],
                                                   services: None) -> None:
    port = free_port()
    api = subprocess.Popen([str(installed / "bin" / "binder-build"), "api"], cwd=installed.parent,
                           env={**os.environ, **farm_env, "BINDER_PORT": str(port),
                                "PATH": f"{installed / 'bin'}{os.pathsep}{os.environ['PATH']}"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        health = wait_http(f"http://127.0.0.1:{port}/health/", lambda: api.poll() is None)
        components = {item["name"]: item["status"] for item in health.json()}
        assert components["mongo"] == "ok" and components["registry"] == "ok", components
        # The farm's page (a template file) and /docs with its Swagger UI files (from
        # the swagger-ui-bundle package) are found by the installed copy too.
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<table" in page.text, page.text[:500]
        page_files = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert len(page_files) >= 2, page.text[:500]
        for src in page_files:
            assert requests.get(f"http://127.0.0.1:{port}{src}", timeout=10).ok, src
        docs = requests.get(f"http://127.0.0.1:{port}/docs", timeout=10)
        assert docs.status_code == 200, docs.text[:500]
        scripts = re.findall(r'<script src="([^"]+)"', docs.text)
        assert scripts, docs.text[:500]
        for src in scripts:
            assert requests.get(f"http://127.0.0.1:{port}/{src}", timeout=10).ok, src
    finally:
        os.killpg(api.pid, 15)
        api.wait(30)
