"""The Binder base image and the farm's Debian root, built once per recipe.

Recipe: beside this module, as package data (``Dockerfile``, the script it
installs, ``requirements.in`` and ``wheels.lock``, the pinned wheels with their
sha256). The host downloads the locked wheels with pip (hashes checked) into a
wheelhouse that goes into the build context, so the build needs no Python index;
only Debian's mirror (``BINDER_APT_MIRROR``) is reached from inside it.

The recipe starts FROM ``BINDER_BASE_ROOT`` when set (``debian:bookworm-slim``
where a registry can be pulled from), otherwise from the farm's Debian root,
made here with debootstrap and imported. That root is also pushed as
``REGISTRY/binder-root:latest``: repository Dockerfiles may start FROM it
and build their own user, as the Binder documentation shows.

Images are labelled with a hash of everything that shapes them (recipe,
lock, settings); a host whose registry already holds the image of that hash
does nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker.errors

from common.config import Config
from workers.docker_engine import docker_client
from workers.registry import manifest_exists, push_image, split_tag

RECIPE_DIR = Path(__file__).resolve().parent
LOCK_FILE = "wheels.lock"
REQUIREMENTS_FILE = "requirements.in"
#: The recipe's files that go into the build context as they are.
CONTEXT_FILES = ("Dockerfile", "make-env-venv")
RECIPE_LABEL = "binder-build.recipe"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates,git,adduser"
#: The interpreter and platforms the wheels are for: Debian bookworm's Python on x86-64.
WHEEL_TARGET = ["--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp",
                "--abi", "cp311", "--platform", "manylinux2014_x86_64",
                "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64"]
_LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$")
_WHEEL_NAME = re.compile(r"^(.+?)-(\d[^-]*)-")

Say = Callable[[str], None]


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def _pip_env() -> dict[str, str]:
    # The host's own pip settings (constraints, extra indexes) must not shape the image.
    return {**os.environ, "PIP_CONSTRAINT": "", "PIP_CONFIG_FILE": os.devnull}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(recipe: Path = RECIPE_DIR) -> dict[str, tuple[str, str]]:
    """``{name: (version, sha256)}`` of the lock file."""
    pins = {}
    for line in (recipe / LOCK_FILE).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _LOCK_LINE.match(line.strip())
        if not match:
            raise ValueError(f"{LOCK_FILE}: cannot read {line!r}")
        pins[normalize(match.group(1))] = (match.group(2), match.group(3))
    return pins


def write_lock(recipe: Path = RECIPE_DIR, say: Say = print) -> Path:
    """Resolve ``requirements.in`` with pip and pin every wheel with its sha256."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(_pip("download", "--quiet", *WHEEL_TARGET, "-d", scratch,
                            "-r", str(recipe / REQUIREMENTS_FILE)), check=True, env=_pip_env())
        lines = []
        for wheel in sorted(Path(scratch).glob("*.whl")):
            match = _WHEEL_NAME.match(wheel.name)
            if not match:
                raise ValueError(f"unexpected wheel name {wheel.name}")
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{normalize(match.group(1))}=={match.group(2)} --hash=sha256:{digest}")
    target = recipe / LOCK_FILE
    target.write_text("# Written by `binder-build base-image --lock` from requirements.in: "
                      "every wheel of the base image, pinned.\n" + "\n".join(lines) + "\n")
    say(f"locked {len(lines)} wheels in {target}")
    return target


def jupyterhub_version(config: Config, recipe: Path = RECIPE_DIR) -> str:
    """The jupyterhub the base image gets: the setting, else the locked one."""
    return str(config.jupyterhub_version or read_lock(recipe)["jupyterhub"][0])


def download_wheels(config: Config, target: Path, recipe: Path = RECIPE_DIR) -> None:
    """The locked wheels, fetched on this host with pip (no index in the build).

    When ``BINDER_JUPYTERHUB_VERSION`` asks for another jupyterhub than the
    lock, that one is resolved against the other pins (which stay fixed).
    """
    target.mkdir(parents=True, exist_ok=True)
    pins = read_lock(recipe)
    hub = jupyterhub_version(config, recipe)
    locked = {name: pin for name, pin in pins.items()
              if name != "jupyterhub" or pin[0] == hub}
    lock = target / "download.lock"
    lock.write_text("".join(f"{name}=={version} --hash=sha256:{digest}\n"
                            for name, (version, digest) in locked.items()))
    subprocess.run(_pip("download", "--quiet", "--no-deps", "--require-hashes", *WHEEL_TARGET,
                        "-d", str(target), "-r", str(lock)), check=True, env=_pip_env())
    if "jupyterhub" not in locked:
        constraints = target / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n"
                                       for name, (version, _) in locked.items()))
        subprocess.run(_pip("download", "--quiet", *WHEEL_TARGET, "-d", str(target),
                            "-c", str(constraints), f"jupyterhub=={hub}"),
                       check=True, env=_pip_env())
        constraints.unlink()
    lock.unlink()


def recipe_hash(config: Config, recipe: Path = RECIPE_DIR) -> str:
    """Everything that shapes the base image, hashed."""
    digest = hashlib.sha256()
    for name in (*CONTEXT_FILES, LOCK_FILE):
        digest.update((recipe / name).read_bytes())
    for value in (jupyterhub_version(config, recipe), config.nb_user, str(config.nb_uid),
                  config.apt_mirror, config.base_root):
        digest.update(b"\0" + str(value).encode())
    return digest.hexdigest()[:16]


def _root_hash(config: Config) -> str:
    text = f"{DEBOOTSTRAP_PACKAGES}\0{config.apt_mirror or DEBIAN_MIRROR}\0v2"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_root_image(config: Config, say: Say) -> str:
    """The farm's Debian root as a local image, made with debootstrap when needed.

    Python's "externally managed" marker is removed, as in the ``python``
    images the Binder documentation starts FROM, so ``pip install`` in a
    repository Dockerfile works as that documentation shows.
    """
    local = f"binder-rootfs:bookworm-{_root_hash(config)}"
    client = docker_client(config)
    try:
        client.images.get(local)
        return local
    except docker.errors.ImageNotFound:
        pass
    config.data_path.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=config.data_path))
    try:
        say("making a Debian root with debootstrap (about a minute)")
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}",
                        "bookworm", str(rootfs), config.apt_mirror or DEBIAN_MIRROR],
                       check=True, stdout=subprocess.DEVNULL)
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        repository, tag = local.split(":")
        client.api.import_image_from_stream(
            tar.stdout, repository=repository, tag=tag,
            changes=["ENV LANG=C.UTF-8 LC_ALL=C.UTF-8", 'CMD ["/bin/bash"]'])
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return local


def _push(config: Config, image: str, say: Say) -> None:
    say(f"pushing {image}")
    push_image(docker_client(config), config, image, on_status=lambda status: None)


def publish_root_image(config: Config, root: str, say: Say) -> str:
    """Push the Debian root as ``REGISTRY/binder-root:latest`` unless it is there."""
    target = config.root_image_name
    client = docker_client(config)
    root_id = client.images.get(root).id
    try:
        current = client.images.get(target).id == root_id
    except docker.errors.ImageNotFound:
        current = False
    if current and manifest_exists(config, target):
        return str(target)
    repository, tag = split_tag(target)
    client.images.get(root).tag(repository, tag=tag)
    _push(config, target, say)
    return str(target)


def ensure_base_image(config: Config, say: Say = print, image: str | None = None) -> str:
    """Make sure the base image of the current recipe is in the registry.

    ``image`` defaults to ``config.base_image_name``; an operator-provided
    ``BINDER_BASE_IMAGE`` is only used, never built. The farm's Debian root
    is published as ``binder-root`` beside it.
    """
    if config.base_image and image is None:
        return str(config.base_image_name)
    image = image or config.base_image_name
    wanted = recipe_hash(config)
    client = docker_client(config)
    try:
        current = client.images.get(image).labels.get(RECIPE_LABEL) == wanted
    except docker.errors.ImageNotFound:
        current = False
    if not config.base_root:
        publish_root_image(config, ensure_root_image(config, say), say)
    if current and manifest_exists(config, image):
        say(f"base image {image} is up to date")
        return str(image)
    if not current:
        build_base_image(config, image, wanted, say)
    _push(config, image, say)
    return str(image)


def build_base_image(config: Config, image: str, recipe: str, say: Say) -> None:
    root = config.base_root or ensure_root_image(config, say)
    with tempfile.TemporaryDirectory(dir=config.data_path) as context:
        for name in CONTEXT_FILES:
            shutil.copy(RECIPE_DIR / name, context)
        say(f"downloading the locked wheels (jupyterhub {jupyterhub_version(config)})")
        download_wheels(config, Path(context) / "wheels")
        say(f"building {image} from {root}")
        client = docker_client(config)
        buildargs = {"ROOT": root, "NB_USER": config.nb_user, "NB_UID": str(config.nb_uid),
                     "APT_MIRROR": config.apt_mirror}
        for chunk in client.api.build(path=context, tag=image, buildargs=buildargs,
                                      network_mode=config.build_network, rm=True, forcerm=True,
                                      labels={RECIPE_LABEL: recipe}, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"building the base image failed: {chunk['error']}")
            text = chunk.get("stream", "").rstrip()
            if text.startswith("Step "):
                say(text)
