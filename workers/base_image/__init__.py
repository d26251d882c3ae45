"""The Binder base image: built once per recipe, pushed so every host can pull it.

Recipe: ``Dockerfile`` beside this module (package data). Its ROOT is ``BINDER_BASE_ROOT``
when set (``debian:bookworm-slim`` where a registry can be pulled from),
otherwise a Debian root made here with debootstrap and imported. The image
is labelled with a hash of the recipe; a host that already has the image of
the current recipe in the registry does nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import docker.errors

from common.config import Config
from workers.docker_engine import docker_client
from workers.registry import manifest_exists, push_image

RECIPE = resources.files(__name__) / "Dockerfile"
ROOT_IMAGE = "binder-rootfs:bookworm"
RECIPE_LABEL = "binder-build.recipe"
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates,git"
WHEELS = ["py-rattler>=0.10", "pyyaml>=6"]

Say = Callable[[str], None]


def recipe_hash() -> str:
    digest = hashlib.sha256(RECIPE.read_bytes())
    digest.update(" ".join(WHEELS).encode())
    return digest.hexdigest()[:16]


def ensure_root_image(config: Config, say: Say) -> str:
    """The image the recipe starts FROM, made with debootstrap when needed."""
    if config.base_root_image:
        return str(config.base_root_image)
    client = docker_client(config)
    try:
        client.images.get(ROOT_IMAGE)
        return ROOT_IMAGE
    except docker.errors.ImageNotFound:
        pass
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=config.data_path))
    try:
        say("making a Debian root with debootstrap (about a minute)")
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}",
                        "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                       check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        client.api.import_image_from_stream(tar.stdout, repository=ROOT_IMAGE.split(":")[0],
                                            tag=ROOT_IMAGE.split(":")[1])
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return ROOT_IMAGE


def download_wheels(target: Path) -> None:
    """The wheels the recipe installs, fetched on this host (no index in the build)."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                    "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_28_x86_64", "-d", str(target), *WHEELS],
                   check=True, env={**os.environ, "PIP_CONSTRAINT": ""})


def ensure_base_image(config: Config, say: Say = print) -> str:
    """Make sure ``config.base_image_name`` of the current recipe is in the registry."""
    image = config.base_image_name
    if config.base_image:  # operator-provided: only check it exists
        return str(image)
    wanted = recipe_hash()
    client = docker_client(config)
    try:
        local = client.images.get(image)
        current = local.labels.get(RECIPE_LABEL) == wanted
    except docker.errors.ImageNotFound:
        current = False
    if current and manifest_exists(config, image):
        say(f"base image {image} is up to date")
        return str(image)
    if not current:
        build_base_image(config, image, wanted, say)
    say(f"pushing {image}")
    push_image(client, config, image, on_status=lambda status: None)
    return str(image)


def build_base_image(config: Config, image: str, recipe: str, say: Say) -> None:
    root = ensure_root_image(config, say)
    wheels = config.data_path / "base-image" / "wheels"
    if not any(wheels.glob("*.whl")):
        download_wheels(wheels)
    with tempfile.TemporaryDirectory(dir=config.data_path) as context:
        (Path(context) / "Dockerfile").write_bytes(RECIPE.read_bytes())
        shutil.copytree(wheels, Path(context) / "wheels")
        say(f"building {image} from {root}")
        client = docker_client(config)
        for chunk in client.api.build(path=context, tag=image, buildargs={"ROOT": root},
                                      network_mode=config.build_network, rm=True,
                                      labels={RECIPE_LABEL: recipe}, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"building the base image failed: {chunk['error']}")
            text = chunk.get("stream", "").rstrip()
            if text.startswith("Step "):
                say(text)
