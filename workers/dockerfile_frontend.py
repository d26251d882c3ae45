"""What the farm does with a repository Dockerfile's ``# syntax`` parser directive.

With BuildKit, ``# syntax=IMAGE`` makes the engine pull IMAGE and run it as
the build's frontend: code the repository chooses, run by the farm's
builder, from a registry (Docker Hub, mostly) the farm may not reach. The
farm runs no frontend but the engine's built-in one:

* Docker's own stable frontend, ``docker/dockerfile`` at ``1``, ``1.N``,
  ``1.N.M`` or ``latest`` (with or without a digest), is the line most
  Dockerfiles written for ``docker buildx`` start with, and asks for the
  syntax the built-in frontend reads. The farm builds such a file with the
  built-in frontend: the directive becomes a comment at the end of the
  parser directives (every other directive keeps its meaning, every line
  after them its number), and the detect phase's log says so. Syntax
  newer than the engine's frontend then fails to parse, in the build log.
* Any other frontend (``docker/dockerfile:1-labs``,
  ``docker/dockerfile-upstream``, another registry's or one's own image,
  the ``//syntax`` and JSON forms) is refused at detect with a sentence
  saying to remove the line: the built-in frontend would not read what the
  repository wrote for that one, and the farm will not run it.
  ``BINDER_ALLOWED_BASE_IMAGES`` does not change this: it lists images to
  build on, not code to run in the builder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import BuildFailure
from workers.dockerfile_parser.directives import without_directive
from workers.dockerfile_parser.images import ImageUse, syntax_images
from workers.dockerfile_parser.lexer import BOM
from workers.image_policy import InvalidReference, parse_reference
from workers.repo_yaml import shorten

#: Docker's own Dockerfile frontend, as image names are normalised.
DOCKER_FRONTEND = "docker.io/docker/dockerfile"
#: Its stable channel: what the built-in frontend reads (``-labs`` adds instructions).
_STABLE_TAG = re.compile(r"^(?:latest|1(?:\.\d+){0,2})$")
_HASH_FORM = "# syntax"


@dataclass(frozen=True)
class BuiltIn:
    """A Dockerfile as the farm builds it with the built-in frontend, and the
    ``# syntax`` line it no longer uses (``None`` when it had none to take out)."""

    text: str
    dropped: ImageUse | None = None


def is_docker_frontend(image: str) -> bool:
    """Whether ``image`` is Docker's own frontend, stable channel."""
    try:
        reference = parse_reference(image)
    except InvalidReference:
        return False
    return reference.repository == DOCKER_FRONTEND and (
        reference.tag is None or bool(_STABLE_TAG.match(reference.tag)))


def with_builtin_frontend(text: str) -> BuiltIn:
    """``text`` without its ``# syntax`` directive when that names Docker's own
    frontend (and only then: anything else is left for ``check_frontend``)."""
    uses = set(syntax_images(text))  # the same line, as each Docker version reads it
    if len(uses) != 1:
        return BuiltIn(text)
    [use] = uses
    if use.how != _HASH_FORM or not is_docker_frontend(use.image):
        return BuiltIn(text)
    body = text.removeprefix(BOM)
    comment = f"# ({use.image}: built with the engine's built-in frontend)"
    moved = without_directive(body.split("\n"), "syntax", comment)
    if moved is None:
        return BuiltIn(text)
    return BuiltIn(text[:len(text) - len(body)] + "\n".join(moved), use)


def check_frontend(text: str, file_name: str = "Dockerfile") -> None:
    """``BuildFailure`` for a frontend the farm does not run (what
    ``with_builtin_frontend`` left in ``text``, the repository's ``file_name``)."""
    for use in syntax_images(text):
        raise BuildFailure(
            f"The {file_name}'s {use.how} on line {use.line} asks for the frontend "
            f"{shorten(use.image)}; this farm builds every Dockerfile with the Docker "
            "engine's built-in frontend and runs no other.",
            suggestions=[f"Remove the {use.how} line (or make it # syntax=docker/dockerfile:1), "
                         "and any instruction only that frontend knows."])


__all__ = ["DOCKER_FRONTEND", "BuiltIn", "check_frontend", "is_docker_frontend",
           "with_builtin_frontend"]
