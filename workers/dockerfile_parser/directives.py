"""Parser directives: the ``# key=value`` lines at the top of a Dockerfile.

BuildKit reads ``escape``, ``syntax`` and ``check`` from the first lines
only: the first line that is not a directive of a key it knows ends the
block, and after it ``# syntax=`` is a comment. Docker versions differ on
what ends the block (``directive_escapes`` reads it as each does);
``directive_block`` is the one loop over the block they all share.
``without_directive`` takes one directive out of the block for every
version at once (the farm builds Docker's own ``# syntax`` frontend with the
engine's built-in one: ``workers/dockerfile_frontend.py``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

from workers.dockerfile_parser.lexer import GO_SPACE, lstrip, trim_newline

#: Go's regexp ``\s``
_GO_REGEX_SPACE = "\t\n\f\r "
_DIRECTIVE_KEY = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=")
DIRECTIVES = frozenset({"escape", "syntax", "check"})
#: How each Docker version in use reads the block: the keys it knows, whether
#: whitespace may come before ``#``, and the whitespace skipped after it.
#: Older parsers allow whitespace before ``#`` and know ``escape`` and ``syntax``;
#: newer ones also know ``check``.
_VERSIONS = ((frozenset({"escape", "syntax"}), True, _GO_REGEX_SPACE),
             (DIRECTIVES, True, _GO_REGEX_SPACE),
             (DIRECTIVES, False, GO_SPACE))


def directive(body: str) -> tuple[str, str] | None:
    """``KEY=VALUE`` (the text after the comment mark), as BuildKit's directive regex reads it.

    Written without a regex on purpose: ``(.+?)\\s*$`` backtracks
    quadratically on a long line of spaces.
    """
    match = _DIRECTIVE_KEY.match(body)
    if not match:
        return None
    value = body[match.end():].strip(_GO_REGEX_SPACE)
    return (match.group(1).lower(), value) if value else None


def directive_block(lines: list[str], keys: Collection[str] = DIRECTIVES, prefix: str = "#",
                    lenient: bool = False, after_mark: str = GO_SPACE
                    ) -> Iterator[tuple[int, str, str]]:
    """(index in ``lines``, key, value) of each directive at the top of ``lines``, up to the
    first line that is not a directive of one of ``keys``.

    ``prefix`` is the comment mark, ``lenient`` lets whitespace come before
    it, ``after_mark`` is the whitespace skipped between the mark and the key.
    """
    for index, raw in enumerate(lines):
        token = trim_newline(raw)
        if lenient:
            token = lstrip(token)
        if not token.startswith(prefix):
            return
        found = directive(token[len(prefix):].lstrip(after_mark))
        if not found or found[0] not in keys:
            return
        yield index, found[0], found[1]


def directive_escapes(lines: list[str]) -> set[str]:
    """The escape characters the Docker versions in use would take from the top lines.

    A directive error (a repeated directive, an unknown escape) makes that
    version fail: it adds nothing.
    """
    escapes: set[str] = set()
    for keys, lenient, after_mark in _VERSIONS:
        seen: dict[str, str] = {}
        for _, key, value in directive_block(lines, keys, lenient=lenient,
                                             after_mark=after_mark):
            if key in seen or (key == "escape" and value not in ("\\", "`")):
                break
            seen[key] = value
        else:
            escapes.add(seen.get("escape", "\\"))
    return escapes


def _read_by_each_version(lines: list[str]) -> list[list[tuple[int, str, str]]]:
    """The directive block as each Docker version reads it (and as ``# syntax``
    is looked for: whitespace before ``#`` allowed, Go's spaces after it)."""
    ways = (*_VERSIONS, (DIRECTIVES, True, GO_SPACE))
    return [list(directive_block(lines, keys, lenient=lenient, after_mark=after_mark))
            for keys, lenient, after_mark in ways]


def without_directive(lines: list[str], key: str, comment: str) -> list[str] | None:
    """``lines`` with the ``key`` directive taken out of the block and ``comment`` (a
    line that is no directive) put at the block's end in its place.

    The other directives move up a line, so each Docker version still reads
    them as before, and every line after the block keeps its number. ``None``
    when that cannot be done: the directive is repeated, or written so that
    versions disagree on the block around it.
    """
    before = _read_by_each_version(lines)
    found = {index for reading in before for index, name, _ in reading if name == key}
    if not found or any(sum(name == key for _, name, _ in reading) > 1 for reading in before):
        return None
    end = max(reading[-1][0] + 1 for reading in before if reading)
    kept = [line for index, line in enumerate(lines[:end]) if index not in found]
    moved = [*kept, *([comment] * len(found)), *lines[end:]]
    after = _read_by_each_version(moved)
    others = [[(name, value) for _, name, value in reading if name != key] for reading in before]
    if [[(name, value) for _, name, value in reading] for reading in after] != others:
        return None
    return moved


__all__ = ["DIRECTIVES", "directive", "directive_block", "directive_escapes",
           "without_directive"]
