"""Parser directives: the ``# key=value`` lines at the top of a Dockerfile.

BuildKit reads ``escape``, ``syntax`` and ``check`` from the first lines
only: the first line that is not a directive of a key it knows ends the
block, and after it ``# syntax=`` is a comment. Docker versions differ on
what ends the block (``directive_escapes`` reads it as each does);
``directive_block`` is the one loop over the block they all share.
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


__all__ = ["DIRECTIVES", "directive", "directive_block", "directive_escapes"]
