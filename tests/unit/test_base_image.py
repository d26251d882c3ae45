"""The base image recipe: its lock, and what its hash covers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import load_config
from workers.base_image import RECIPE_DIR, jupyterhub_version, read_lock, recipe_hash
from workers.buildpacks.conda_env import MAKE_ENV_VENV

CONFIG = load_config(environ={})


def test_the_lock_pins_every_wheel_with_a_hash() -> None:
    pins = read_lock()
    for name in ("jupyterlab", "notebook", "jupyterhub", "ipykernel", "uv", "py-rattler"):
        version, digest = pins[name]
        assert version[0].isdigit() and len(digest) == 64
    assert pins["jupyterlab"][0].startswith("4.") and pins["notebook"][0].startswith("7.")


def test_the_jupyterhub_version_is_a_setting() -> None:
    assert jupyterhub_version(CONFIG) == read_lock()["jupyterhub"][0]
    other = CONFIG.replace(jupyterhub_version="4.1.6")
    assert jupyterhub_version(other) == "4.1.6"
    assert recipe_hash(other) != recipe_hash(CONFIG)


@pytest.mark.parametrize("setting", [{"nb_uid": 1001}, {"nb_user": "main"},
                                     {"apt_mirror": "http://mirror.test/debian"}])
def test_settings_that_shape_the_image_change_its_hash(setting: dict[str, object]) -> None:
    assert recipe_hash(CONFIG.replace(**setting)) != recipe_hash(CONFIG)


def test_a_broken_lock_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / "wheels.lock").write_text("jupyterlab>=4\n")
    with pytest.raises(ValueError, match="cannot read"):
        read_lock(tmp_path)
    assert (RECIPE_DIR / "requirements.in").is_file()


def test_the_script_the_image_installs_is_part_of_its_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe"
    shutil.copytree(RECIPE_DIR, recipe, ignore=shutil.ignore_patterns("__pycache__"))
    before = recipe_hash(CONFIG, recipe)
    (recipe / "make-env-venv").write_text("#!/bin/sh\nexit 1\n")
    assert recipe_hash(CONFIG, recipe) != before
    # The environment builds (environment.yml without Python) run the same script.
    assert f"COPY make-env-venv {MAKE_ENV_VENV}\n" in (RECIPE_DIR / "Dockerfile").read_text()
    assert f"RUN {MAKE_ENV_VENV} /srv/env " in (RECIPE_DIR / "Dockerfile").read_text()


def test_the_environment_venv_runs_jupyter_with_its_own_python(tmp_path: Path) -> None:
    """Server extensions a repository installs into the venv load only in a Jupyter
    that runs the venv's Python, and ``ipython`` in a terminal imports only what the
    venv's Python sees: the system's Python commands run it; the venv's own stay."""
    system = tmp_path / "bin"
    system.mkdir()
    entry_point = "#!/usr/bin/python3\nimport sys\nprint(sys.prefix, sys.argv[1:])\n"
    (system / "jupyter-lab").write_text(entry_point)
    (system / "jupyter-binary").write_bytes(b"\x7fELF\0\0")
    (system / "ipython").write_text(entry_point)
    (system / "pip").write_text("#!/usr/bin/python3\nprint('the system pip')\n")
    (system / "tool.sh").write_text("#!/bin/sh\necho a shell script\n")
    prefix = tmp_path / "env"
    subprocess.run([str(RECIPE_DIR / "make-env-venv"), str(prefix), str(system)], check=True,
                   env={**os.environ, "PATH": f"{Path(sys.base_prefix, 'bin')}:/usr/bin:/bin"})
    assert sorted(path.name for path in (prefix / "bin").glob("[ijt]*")) == [
        "ipython", "jupyter-lab"]
    for command in ("jupyter-lab", "ipython"):
        output = subprocess.run([str(prefix / "bin" / command), "--version"], check=True,
                                capture_output=True, text=True).stdout
        assert output == f"{prefix} ['--version']\n"
    assert "the system pip" not in (prefix / "bin" / "pip").read_text()
    assert "include-system-site-packages = true" in (prefix / "pyvenv.cfg").read_text()
