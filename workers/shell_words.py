"""Words of a line as ``shlex.split`` reads them, in time linear in the line.

``shlex`` builds each word one character at a time (``token += char`` on an
attribute, which CPython cannot extend in place), so one word of a megabyte
costs seconds; requirements files reach the worker from repositories, up
to :data:`workers.package_index.MAX_FILES` of them, of any length. This
reader matches whole runs of a word at once and gives the same words:
POSIX rules, no comments, blanks are space, tab, CR and LF.
"""

from __future__ import annotations

import re

#: What shlex counts as blanks between words.
_BLANKS = re.compile(r"[ \t\r\n]+")
#: One piece of a word: plain characters, a single- or double-quoted part, an escaped character.
_PIECE = re.compile(r"""[^ \t\r\n'"\\]+|'[^']*'|"[^"\\]*(?:\\.[^"\\]*)*"|\\.""", re.DOTALL)
#: In double quotes a backslash escapes only a double quote or a backslash.
_DOUBLE_QUOTED_ESCAPE = re.compile(r"""\\(["\\])""")


def shell_words(line: str) -> list[str]:
    """``shlex.split(line)``; ``ValueError`` for an unclosed quote or a final backslash."""
    words: list[str] = []
    position = _skip_blanks(line, 0)
    while position < len(line):
        pieces = []
        while position < len(line) and line[position] not in " \t\r\n":
            piece = _PIECE.match(line, position)
            if piece is None:
                raise ValueError("No closing quotation or escaped character")
            pieces.append(_unquoted(piece.group()))
            position = piece.end()
        words.append("".join(pieces))
        position = _skip_blanks(line, position)
    return words


def _skip_blanks(line: str, position: int) -> int:
    blanks = _BLANKS.match(line, position)
    return blanks.end() if blanks else position


def _unquoted(piece: str) -> str:
    if piece[0] == "'":
        return piece[1:-1]
    if piece[0] == '"':
        return _DOUBLE_QUOTED_ESCAPE.sub(r"\1", piece[1:-1])
    if piece[0] == "\\":
        return piece[1]
    return piece
