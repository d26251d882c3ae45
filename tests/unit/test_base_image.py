"""The base image recipe: its lock, and what its hash covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import load_config
from workers.base_image import RECIPE_DIR, jupyterhub_version, read_lock, recipe_hash

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
