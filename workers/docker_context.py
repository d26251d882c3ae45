"""Assembling the Docker build context of a checkout."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from workers.buildpacks import BuildInputs, BuildPack
from workers.dockerignore import ignore_patterns, kept_paths

GENERATED_DOCKERFILE = "Dockerfile"
#: Where a generated Dockerfile sees the repository.
REPO_ROOT = "repo"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _parents(path: PurePosixPath) -> list[str]:
    return [str(parent) for parent in reversed(path.parents) if str(parent) != "."]


#: Links followed from one build file, as the system follows them at most.
MAX_HOPS = 40


def _hops(checkout: Path, root: Path, path: PurePosixPath) -> list[PurePosixPath]:
    """The repository paths a link ``path`` leads through, link by link, to its file
    (each in its folder's real place); ``find_config_file`` and the requirements check
    refused links that lead outside the repository or back to themselves."""
    hops = []
    current = checkout / path
    try:
        for _ in range(MAX_HOPS):
            if not current.is_symlink():
                break
            target = current.parent / os.readlink(current)
            current = target.parent.resolve() / target.name
            hops.append(PurePosixPath(current.relative_to(root).as_posix()))
    except (OSError, RuntimeError, ValueError):
        pass
    return hops


def _made_from(buildpack: BuildPack, inputs: BuildInputs) -> list[PurePosixPath]:
    """The build files and the files they pull in, each followed by the links and the
    file it leads to when it is a link (the farm read that file)."""
    root = inputs.checkout.resolve()
    files = []
    for path in [*inputs.build_files, *buildpack.pulled_in(inputs)]:
        files += [path, *_hops(inputs.checkout, root, path)]
    return list(dict.fromkeys(files))


def repository_copy(buildpack: BuildPack,
                    inputs: BuildInputs) -> tuple[list[str], list[PurePosixPath]]:
    """The repository paths a generated build copies (folders before what they hold),
    and the build files the ignore file matches but that are copied anyway.

    The ignore file applies to the repository as it does to a Dockerfile's context,
    except to the files the build is made from (``BuildInputs.build_files``, the files
    they pull in, ``BuildPack.pulled_in``, and the file each that is a link leads
    to): the generated Dockerfile stages some of them
    before the repository and runs the others from it, so each is copied even when a
    pattern matches it; a link copied without its target would lead nowhere.
    """
    checkout = inputs.checkout
    # Nothing kept whatever the patterns say: only a repository Dockerfile's build keeps
    # its Dockerfile.
    kept = kept_paths(checkout, ignore_patterns(checkout) + [".git"])
    forced = [path for path in _made_from(buildpack, inputs) if str(path) not in kept]
    kept.update(str(path) for path in forced)
    # A folder's own entry, where a pattern left it out but not some of its files
    # (``!data/keep.txt``) or a build file forced back.
    kept.update(parent for name in list(kept) for parent in _parents(PurePosixPath(name)))
    return sorted(kept, key=lambda name: PurePosixPath(name).parts), forced


def write_context(target: Path, buildpack: BuildPack, inputs: BuildInputs,
                  dockerfile_text: str, say: Callable[[str], None] | None = None) -> str:
    """Write the context tar to ``target``; return the Dockerfile path inside it.

    Links are stored as links (never followed), so a repository cannot pull
    files from outside its checkout into the image. The repository's ignore file
    applies (see ``repository_copy`` for a generated build); ``say`` hears which
    build files it matches.
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
            kept = kept_paths(checkout, patterns, keep=str(inputs.config_path))
            for relative in sorted(kept):
                if relative == str(inputs.config_path):
                    # as rendered (a short FROM binder-root made the farm's full name)
                    _add_bytes(tar, relative, dockerfile_text.encode(errors="surrogateescape"))
                else:
                    tar.add(checkout / relative, arcname=relative, recursive=False)
            return str(inputs.config_path)
        copied, forced = repository_copy(buildpack, inputs)
        for path in forced:
            if say is not None:
                say(f"the ignore file matches {path}, which this build is made from: "
                    "it is copied all the same")
        tar.add(checkout, arcname=REPO_ROOT, recursive=False)
        for relative in copied:
            tar.add(checkout / relative, arcname=f"{REPO_ROOT}/{relative}", recursive=False)
        _add_bytes(tar, GENERATED_DOCKERFILE, dockerfile_text.encode())
        for name, data in buildpack.extra_files(inputs).items():
            _add_bytes(tar, f".binder-build/{name}", data)
    return GENERATED_DOCKERFILE
