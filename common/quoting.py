"""User text quoted back in a message, the API's way: as a JSON string.

A JSON string escapes quotes and control characters the way a client
reading the JSON answer expects (Python's ``repr`` does not: it chooses its
quotes by the text and writes non-ASCII as it is), and the quote is bounded:
a message never carries more of the user's text than ``limit`` characters.
"""

from __future__ import annotations

import json

#: Longest quote of a user's text in a message, unless a caller says otherwise.
MAX_QUOTED = 200


def quoted(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` (a user's) as a JSON string to quote in a message, at most ``limit`` long."""
    literal = json.dumps(text)  # escapes quotes and control characters
    return literal if len(literal) <= limit else f"{literal[:limit - 4]}...\""


def plain_line(text: str) -> str:
    """``text`` as one line of plain text: line breaks and tabs as spaces, every other
    character that is not printable (terminal escapes, C1 controls) as ``?``. A
    terminal shown a build's error must not obey the repository's bytes in it."""
    return "".join(char if char.isprintable() else " " if char in "\t\n\r\v\f" else "?"
                   for char in text)
