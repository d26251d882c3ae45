"""Which images a Dockerfile makes the Docker engine pull, found as Docker finds them.

The farm checks them against ``BINDER_ALLOWED_BASE_IMAGES``
(``workers/image_policy.py``), so every image the engine would pull must be
here, however the file is spelled:

* ``ARG`` lines before the first ``FROM`` (with the farm's build args and
  BuildKit's automatic platform args) expand ``FROM`` as Docker's shell
  lexer does (quotes, escapes, ``$X``, ``${X}``, ``${X:-word}``, ...);
* a ``FROM``, ``COPY --from`` or ``RUN --mount=from=`` naming an earlier
  stage (by index, or by name in any case) or ``scratch`` pulls nothing;
  anything else is an image, and so is the frontend a ``# syntax`` line (or
  ``//syntax``, or a JSON ``{"syntax": ...}``) names, and what ``ONBUILD``
  triggers name.

The images of every reading count. A variable in ``--mount`` ``from=`` or
``${X#pattern}`` in ``FROM`` is refused rather than guessed.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from workers.dockerfile_parser import DockerfileError, Refused, Uncheckable
from workers.dockerfile_parser.directives import directive_block
from workers.dockerfile_parser.instructions import INSTRUCTIONS, Instruction, readings
from workers.dockerfile_parser.lexer import BOM, GO_SPACE, WORD_SPLIT, ShellLexer, raw_words
from workers.dockerfile_parser.mounts import mount_values
from workers.repo_yaml import shorten

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
#: The ways Docker versions write a syntax directive: the comment mark, and
#: whether whitespace may come before it.
_SYNTAX_FORMS = (("#", True), ("#", False), ("//", False))


@dataclass(frozen=True)
class ImageUse:
    """An image the build would pull: its name as written (expanded) and where."""

    image: str
    line: int
    how: str  # "FROM", "COPY --from", "RUN --mount from=", "# syntax", "ONBUILD COPY --from"


def syntax_images(text: str) -> list[ImageUse]:
    """Frontend images a ``syntax`` directive names, in every form BuildKit reads."""
    found: list[ImageUse] = []
    body = text.removeprefix(BOM)
    lines = body.split("\n")
    first = 1
    if lines and lines[0].startswith("#!"):
        lines, first = lines[1:], 2
    for prefix, lenient in _SYNTAX_FORMS:
        for index, key, value in directive_block(lines, prefix=prefix, lenient=lenient):
            if key == "syntax":
                found.append(ImageUse(value.split(" ", 1)[0], first + index,
                                      f"{prefix} syntax"))
    if body.lstrip(GO_SPACE).startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("syntax"), str):
            found.append(ImageUse(data["syntax"].split(" ", 1)[0], 1, "JSON syntax"))
    return found


def pulled_images(text: str, build_args: Mapping[str, str] | None = None) -> list[ImageUse]:
    """Every image building ``text`` could pull, in order of appearance, without repeats.

    Raises ``DockerfileError`` when Docker could not build the file in any
    reading, or when it uses a variable form the farm cannot check.
    """
    found: list[ImageUse] = syntax_images(text)
    problems: list[str] = []
    parsed = 0
    for reading in readings(text):
        try:
            instructions = reading.instructions()
            if not any(i.command == "from" for i in instructions):
                raise Refused("there is no FROM line")
            found += _images_of(instructions, reading.escape, build_args or {})
            parsed += 1
        except Refused as exc:
            problems.append(str(exc))
        except Uncheckable as exc:
            raise DockerfileError(
                f"The Dockerfile uses {exc}, which this farm cannot check; write the image "
                "or stage name out in full.") from None
    if not parsed:
        reason = problems[0] if problems else "its parser directives at the top are invalid"
        raise DockerfileError(f"The Dockerfile cannot be built: {reason}.",)
    unique: dict[tuple[str, str], ImageUse] = {}
    for use in sorted(found, key=lambda use: use.line):
        unique.setdefault((use.image, use.how), use)
    return list(unique.values())


def _images_of(instructions: list[Instruction], escape: str,
               build_args: Mapping[str, str]) -> list[ImageUse]:
    """The images one reading pulls, for every set of automatic args Docker may give."""
    for instruction in instructions:
        if instruction.command not in INSTRUCTIONS:
            raise Refused(f"line {instruction.line}: unknown instruction "
                          f"{shorten(instruction.command.upper())}")
    found: list[ImageUse] = []
    for base_env in ({}, _platform_args()):
        env = _meta_args(instructions, escape, base_env, build_args)
        stages: set[str] = set()
        for instruction in instructions:
            if instruction.command == "from":
                found += _stage_start(instruction, escape, env, stages)
            elif instruction.command == "onbuild":
                inner = instruction.trigger()
                if inner.command in ("from", "onbuild", "maintainer"):
                    raise Refused(f"line {instruction.line}: ONBUILD {inner.command.upper()} "
                                  "is not allowed")
                found += _from_images(inner, stages, "ONBUILD ")
            else:
                found += _from_images(instruction, stages)
    return found


def _platform_args() -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(
        platform.machine(), platform.machine())
    values = {"OS": "linux", "ARCH": arch, "VARIANT": "", "PLATFORM": f"linux/{arch}"}
    return {f"{side}{key}": value for side in ("BUILD", "TARGET") for key, value in
            values.items()}


def _meta_args(instructions: list[Instruction], escape: str, base_env: Mapping[str, str],
               build_args: Mapping[str, str]) -> dict[str, str]:
    """The variables ``FROM`` lines see: the ``ARG`` lines before the first ``FROM``."""
    env = dict(base_env)
    for instruction in instructions:
        if instruction.command == "from":
            break
        if instruction.command != "arg":
            continue
        # BuildKit's parseWords for ARG: whitespace-split, quotes kept
        for word in raw_words(instruction.args, escape):
            key, has_value, raw = word.partition("=")
            if key in build_args:
                env[key] = build_args[key]
            elif has_value:
                env[key] = ShellLexer(escape, env).process(raw)
    return env


def _stage_start(instruction: Instruction, escape: str, env: Mapping[str, str],
                 stages: set[str]) -> list[ImageUse]:
    """The image a ``FROM`` pulls, if any; adds its stage name to ``stages``."""
    args = [word for word in WORD_SPLIT.split(instruction.args) if word]
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise Refused(f"line {instruction.line}: {shorten(args[2])} is not a valid "
                          "stage name")
    elif len(args) != 1:
        raise Refused(f"line {instruction.line}: FROM takes an image and optionally "
                      "AS NAME")
    else:
        name = ""
    try:
        image = ShellLexer(escape, env).process(args[0])
    except Uncheckable as exc:
        raise Uncheckable(f"`{exc}` on line {instruction.line}") from None
    if not image:
        raise Refused(f"line {instruction.line}: FROM names no image")
    # Docker keeps stage names in lower case and looks a FROM's up the same way.
    uses = [] if image == "scratch" or image.lower() in stages else [
        ImageUse(image, instruction.line, "FROM")]
    stages.add(name)
    return uses


def _is_stage(reference: str, stages: set[str]) -> bool:
    if reference.isdigit():
        return True  # a stage index: never pulled
    return reference.lower() in stages


def _from_images(instruction: Instruction, stages: set[str], how_prefix: str = ""
                 ) -> Iterator[ImageUse]:
    """Images named by ``COPY --from`` and ``RUN --mount ... from=`` of one instruction."""
    for flag in instruction.flags:
        name, _, value = flag[2:].partition("=")
        name = name.lower()
        if instruction.command == "copy" and name == "from":
            if value and not _is_stage(value, stages):
                yield ImageUse(value, instruction.line, f"{how_prefix}COPY --from")
        elif instruction.command == "run" and name == "mount":
            for source in mount_values(value, "from", instruction.line):
                if not _is_stage(source, stages):
                    yield ImageUse(source, instruction.line, f"{how_prefix}RUN --mount from=")


__all__ = ["ImageUse", "pulled_images", "syntax_images"]
