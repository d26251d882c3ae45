"""Ignore-file patterns matched in time linear in the pattern and the path.

docker-py turns a pattern into a Python regular expression
(``docker.utils.fnmatch.translate``: ``*`` is ``[^/]*``, ``**`` is
``(.*/)?``), and Python's engine backtracks: each wildcard multiplies the
ways a path can be tried, so ``**/**/**/**/**/**/**/b`` took 40 s against
one path of 60 folders, and a few more wildcards take longer than any build.
Docker's own client matches with Go's regexp, which does not backtrack.

:class:`GlobPattern` reads a pattern as ``translate`` does, into the same
steps, and matches them as a set of positions in the path (a bit per
position, in one integer), one step after another: the work is the
pattern's length times a few operations on the path's bits, whatever the
pattern. What matches is what docker-py's expression matches (a pattern of
one wildcard, which cannot backtrack far, is matched by that expression).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from docker.utils.fnmatch import translate

#: Kinds of step a pattern is made of.
CHAR = "char"  # one character of the path that ``test`` accepts
STAR = "star"  # ``*``: any characters but ``/``
DOUBLE_STAR = "double_star"  # ``**`` before more pattern: nothing, or anything ending in /
REST = "rest"  # ``**`` that ends the pattern: anything


@dataclass(frozen=True)
class Step:
    kind: str
    #: for ``CHAR``: a one-character expression the character must match
    test: re.Pattern[str] | None = None
    #: for ``CHAR`` written as itself (not ``?`` or a set): that character
    literal: str | None = None


def steps(pattern: str) -> list[Step]:
    """``pattern`` as the steps docker-py's ``translate`` makes of it, in order."""
    result: list[Step] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                result.append(Step(REST if i >= n else DOUBLE_STAR))
            else:
                result.append(Step(STAR))
        elif c == "?":
            result.append(Step(CHAR, re.compile("[^/]")))
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                result.append(Step(CHAR, re.compile(re.escape("["))))
            else:
                stuff = pattern[i:j].replace("\\", "\\\\")
                i = j + 1
                if stuff[0] == "!":
                    stuff = f"^{stuff[1:]}"
                elif stuff[0] == "^":
                    stuff = f"\\{stuff}"
                result.append(Step(CHAR, re.compile(f"[{stuff}]")))
        else:
            result.append(Step(CHAR, re.compile(re.escape(c)), c))
    return result


def _literal_run(written: list[Step]) -> str:
    """The characters ``written`` starts with, each written as itself."""
    run = itertools.takewhile(lambda step: step.literal is not None, written)
    return "".join(step.literal or "" for step in run)


class GlobPattern:
    """One pattern, compiled once; ``match(path)`` is whether the whole path matches.

    Raises ``re.error`` for a pattern ``translate`` would make an invalid
    expression of (a character range such as ``[z-a]``).
    """

    def __init__(self, pattern: str) -> None:
        written = steps(pattern)
        # One wildcard cannot make the engine backtrack more than once per position,
        # and it is the faster of the two for the patterns most files hold (``*.pyc``).
        wildcards = sum(step.kind != CHAR for step in written)
        self.regex = re.compile(translate(pattern)) if wildcards <= 1 else None
        self.steps = _in_a_row_once(written)
        # What every matching path starts and ends with: most paths are told apart by
        # these alone (``**/*.pyc`` against ``app.py``), at the cost of two comparisons.
        self.prefix = _literal_run(written)
        self.suffix = _literal_run(written[::-1])[::-1]

    def match(self, path: str) -> bool:
        if self.regex is not None:
            return self.regex.match(path) is not None
        # ``$`` also matches before a newline that ends the path: such a path is matched
        # step by step.
        if not path.startswith(self.prefix) or (
                not path.endswith("\n") and not path.endswith(self.suffix)):
            return False
        size = len(path)
        # A set of positions is one integer with a byte for each position (0 or 1), so
        # masks are made by str.translate and moved by shifts, at C's speed.
        masks: dict[re.Pattern[str] | str, int] = {}

        def passable(test: re.Pattern[str] | str) -> int:
            """The positions whose character may be passed by ``test`` (a one-character
            expression, or ``not /``, ``not newline``)."""
            if test not in masks:
                masks[test] = _mask(path, test)
            return masks[test]

        at = 1  # positions reached: the start
        for step in self.steps:
            if step.kind == CHAR:
                assert step.test is not None
                at = (at & passable(step.test)) << LANE
            elif step.kind == STAR:
                at = _run_on(at, passable(NOT_SLASH), size)
            elif step.kind == REST:
                at = _run_on(at, passable(NOT_NEWLINE), size)
            else:  # ``(.*/)?``: stay, or stop right after any slash ``.*`` reaches
                at |= (_run_on(at, passable(NOT_NEWLINE), size) & passable(SLASH)) << LANE
            if not at:
                return False
        # ``$`` matches at the end, and before a newline that ends the path
        return bool(at >> LANE * size & 1) or (
            path.endswith("\n") and bool(at >> LANE * (size - 1) & 1))


def _in_a_row_once(written: list[Step]) -> list[Step]:
    """``written`` with ``**`` steps in a row made one: ``(.*/)?(.*/)?`` is ``(.*/)?``, and
    ``(.*/)?.*`` is ``.*``. Steps that take no character are then never two in a row, so
    a match passes over at most two steps for each character of the path."""
    result: list[Step] = []
    for step in written:
        if result and result[-1].kind == DOUBLE_STAR and step.kind in (DOUBLE_STAR, REST):
            result[-1] = step
        else:
            result.append(step)
    return result


#: Bits of one position in a set of positions.
LANE = 8
#: The character tests that are not expressions: ``.`` passes all but a newline.
SLASH, NOT_SLASH, NOT_NEWLINE = "/", "not /", "not newline"


def _accepts(test: re.Pattern[str] | str, char: str) -> bool:
    if test == SLASH:
        return char == "/"
    if test == NOT_SLASH:
        return char != "/"
    if test == NOT_NEWLINE:
        return char != "\n"
    assert isinstance(test, re.Pattern)
    return test.fullmatch(char) is not None


def _mask(path: str, test: re.Pattern[str] | str) -> int:
    """A byte of 1 for each character of ``path`` that ``test`` accepts (each distinct
    character tried once), else 0."""
    table = {ord(char): "\x01" if _accepts(test, char) else "\x00" for char in set(path)}
    return int.from_bytes(path.translate(table).encode("latin-1"), "little")


def _run_on(at: int, passable: int, size: int) -> int:
    """Every position reached from ``at`` by passing characters ``passable`` allows, any
    number of them (a prefix fill: each round doubles the distance covered)."""
    jump, distance = passable, 1
    while distance <= size and jump:
        at |= (at & jump) << LANE * distance
        jump &= jump >> LANE * distance
        distance *= 2
    return at
