"""Assembling the Docker build context of a checkout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from docker.utils.build import exclude_paths

from workers.buildpacks import BuildInputs, BuildPack
from workers.dockerignore import ignore_patterns

GENERATED_DOCKERFILE = "Dockerfile"


def _without_git(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    return None if ".git" in parts[1:2] else info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_context(target: Path, buildpack: BuildPack, inputs: BuildInputs,
                  dockerfile_text: str) -> str:
    """Write the context tar to ``target``; return the Dockerfile path inside it.

    Links are stored as links (never followed), so a repository cannot pull
    files from outside its checkout into the image.
    """
    checkout = inputs.checkout
    with tarfile.open(target, "w") as tar:
        # The Docker client tells a context tar on stdin from a Dockerfile by
        # parsing the first 512 bytes as one tar header: that entry must be
        # plain (no PAX or long-name record, which Python writes for any
        # file's fractional mtime).
        root = tarfile.TarInfo("./")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)
        if buildpack.owns_context:
            assert inputs.config_path is not None
            patterns = ignore_patterns(checkout, inputs.config_path) + [".git"]
            kept = exclude_paths(str(checkout), patterns, dockerfile=str(inputs.config_path))
            for relative in sorted(kept):
                if relative == str(inputs.config_path):
                    # as rendered (a short FROM binder-root made the farm's full name)
                    _add_bytes(tar, relative, dockerfile_text.encode(errors="surrogateescape"))
                else:
                    tar.add(checkout / relative, arcname=relative, recursive=False)
            return str(inputs.config_path)
        tar.add(checkout, arcname="repo", filter=_without_git)
        _add_bytes(tar, GENERATED_DOCKERFILE, dockerfile_text.encode())
        for name, data in buildpack.extra_files(inputs).items():
            _add_bytes(tar, f".binder-build/{name}", data)
    return GENERATED_DOCKERFILE
