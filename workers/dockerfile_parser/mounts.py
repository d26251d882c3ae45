"""``RUN --mount`` flags: the values of their fields, the caches they mount, and the
SSH agents and secrets they ask ``docker build``'s client for.

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


#: How BuildKit reads ``required=`` as true (Go's ``ParseBool``); a bare ``required`` too.
_TRUE = frozenset({"", "1", "t", "true"})


@dataclass(frozen=True)
class ClientMount:
    """An SSH agent (``kind`` ssh) or a secret a ``RUN`` step mounts from the client."""

    kind: str
    name: str  # the secret's id (or its target's file name); "default" for an agent
    required: bool
    line: int
    how: str  # "RUN" or "ONBUILD RUN"


def client_mounts(text: str) -> list[ClientMount]:
    """Every ``RUN --mount=type=ssh`` and ``type=secret`` of ``text``, in any reading;
    a mount whose fields cannot be read is left to the checks that refuse it."""
    found: dict[tuple[str, str, int], ClientMount] = {}
    for _, instruction, how in every_instruction(text, "run"):
        for value in mounts(instruction):
            try:
                kinds = {kind.lower() for kind in mount_values(value, "type", instruction.line)}
                names = mount_values(value, "id", instruction.line) + [
                    target.rstrip("/").rsplit("/", 1)[-1]
                    for target in mount_values(value, "target", instruction.line)]
                required = any(flag.lower() in _TRUE for flag in
                               mount_values(value, "required", instruction.line))
            except (Refused, Uncheckable):
                continue
            for kind in sorted(kinds & {"ssh", "secret"}):
                name = names[0] if names and kind == "secret" else "default"
                mount = ClientMount(kind, name, required, instruction.line, how)
                found.setdefault((kind, name, instruction.line), mount)
    return sorted(found.values(), key=lambda mount: mount.line)


__all__ = ["CacheMount", "ClientMount", "cache_ids", "client_mounts", "mount_values", "mounts"]
