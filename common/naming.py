"""Build names and image names.

A build's preferred name is the original Binder's ``owner-repo[-ref]`` for
GitHub and the provider or host plus the path for other sources; which
name a repository and ref actually get (one name, one repository and ref,
for ever) is decided by ``common/name_store.py``.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME_LENGTH = 128
#: The form every build name takes (what ``preferred_name`` and ``suffixed_name`` make).
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_SEPARATORS = re.compile(r"[._-]+")
#: Separators Docker allows between alphanumerics in an image name component.
_VALID_SEPARATOR = re.compile(r"^(\.|_|__|-+)$")


def possible_name(name: str) -> bool:
    """Whether ``name`` has the form of a build name (it may still name no build)."""
    return len(name) <= MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None


def safe_name_part(text: str) -> str:
    """Lower-case ``text`` and replace what an image name cannot hold.

    The result matches Docker's path component grammar: alphanumerics joined
    by ``.``, ``_``, ``__`` or dashes; any other run of separators becomes ``-``.
    """
    cleaned = _UNSAFE.sub("-", text.lower())
    cleaned = _SEPARATORS.sub(
        lambda match: match.group() if _VALID_SEPARATOR.match(match.group()) else "-", cleaned)
    return cleaned.strip("-._") or "x"


def preferred_name(parts: tuple[str, ...] | list[str]) -> str:
    """The pieces joined with ``-``, each made safe; bounded in length.

    ``("jupyter", "notebook", "v1.0")`` gives ``jupyter-notebook-v1.0``. An
    over-long name keeps its start and ends in a short hash of the whole,
    so distinct long names stay distinct.
    """
    name = "-".join(safe_name_part(part) for part in parts if part)
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME_LENGTH - 11].rstrip('-._')}-{digest}"
    return name


def build_name(owner: str, repo: str, ref: str | None = None) -> str:
    """``owner-repo``, plus ``-ref`` when a ref was given: the original Binder's name."""
    return preferred_name([owner, repo] + ([ref] if ref else []))


def identity(repository: str, ref: str | None) -> str:
    """The one string that says which content a name stands for."""
    return f"{repository}\n{ref or ''}"


def suffixed_name(name: str, key: str, length: int = 8) -> str:
    """``name`` plus a short hash of ``key``: the unambiguous form on a clash."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:length]
    return f"{name[: MAX_NAME_LENGTH - length - 1].rstrip('-._')}-{digest}"


def display_name(owner: str, repo: str, ref: str | None = None) -> str:
    """``owner/repo`` or ``owner/repo/tree/ref``."""
    return f"{owner}/{repo}/tree/{ref}" if ref else f"{owner}/{repo}"


def image_repository(registry: str, prefix: str, name: str) -> str:
    """``registry/<prefix><name>``, the repository part of an image address."""
    return f"{registry}/{prefix}{name}"


def image_name(registry: str, prefix: str, name: str, tag: str) -> str:
    """The full image address: ``registry/<prefix><name>:<tag>``."""
    return f"{image_repository(registry, prefix, name)}:{tag}"
