"""``RUN --mount`` flags: the values of their fields, and the caches they mount.

A mount's fields are comma-separated ``key=value`` pairs, read as CSV by
BuildKit; which CSV dialect depends on Docker's version, so every
comma-separated piece with its quotes removed counts too: no field goes
unseen. A value spelled with a variable is not evaluated here
(``Uncheckable``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from workers.dockerfile_parser import DockerfileError, Refused, Uncheckable
from workers.dockerfile_parser.instructions import Instruction, every_instruction
from workers.dockerfile_parser.lexer import ShellLexer
from workers.repo_yaml import shorten


def mount_values(value: str, key: str, line: int) -> list[str]:
    """Every value of field ``key`` in the ``--mount`` flag ``value`` on line ``line``,
    under any dialect. Raises ``Refused`` when the flag is not valid CSV (Docker refuses
    it too) and ``Uncheckable`` for a value spelled with a variable."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as exc:
        raise Refused(f"line {line}: the --mount value is not valid") from exc
    pieces = [piece.strip().strip("'\"") for piece in value.split(",")]
    values = []
    for field, strict in [(f, True) for f in fields] + [(p, False) for p in pieces]:
        name, _, raw = field.partition("=")
        if name.strip().strip("'\"").lower() != key:
            continue
        lexer = ShellLexer("\\")
        try:
            found = lexer.process(raw)
        except Refused:
            if strict:
                raise
            continue
        if lexer.used:
            raise Uncheckable(f"`RUN --mount {key}={shorten(raw)}` on line {line}")
        values.append(found)
    return values


def mounts(instruction: Instruction) -> list[str]:
    """The values of ``instruction``'s ``--mount`` flags (none unless it is a ``RUN``)."""
    if instruction.command != "run":
        return []
    return [value for flag in instruction.flags
            for name, _, value in [flag[2:].partition("=")] if name.lower() == "mount"]


@dataclass(frozen=True)
class CacheMount:
    """A cache a ``RUN`` step mounts by its id, and where."""

    cache_id: str
    line: int
    how: str  # "RUN" or "ONBUILD RUN"


def cache_ids(text: str) -> list[CacheMount]:
    """Every ``id`` a ``RUN --mount`` (or ``ONBUILD RUN --mount``) names, in any reading
    of ``text``: the id of a cache mount is the cache every build naming it shares.

    Raises ``DockerfileError`` for an id spelled with a variable.
    """
    found: dict[tuple[str, int], CacheMount] = {}
    for _, instruction, how in every_instruction(text, "run"):
        for value in mounts(instruction):
            try:
                ids = mount_values(value, "id", instruction.line)
            except Refused:
                continue
            except Uncheckable as exc:
                raise DockerfileError(
                    f"The Dockerfile names a mount's id with a variable ({exc}); this farm "
                    "checks which caches a build mounts: write the id out.") from None
            for cache_id in ids:
                found.setdefault((cache_id, instruction.line),
                                 CacheMount(cache_id, instruction.line, how))
    return sorted(found.values(), key=lambda mount: mount.line)


__all__ = ["CacheMount", "cache_ids", "mount_values", "mounts"]
