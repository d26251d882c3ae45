"""The URLs a Dockerfile's ``ADD`` lines make the Docker engine download itself.

BuildKit fetches an ``ADD`` source that is a URL (or a git address, which
newer frontends clone) on the engine's own network, whatever network the
build's steps run on; ``workers/buildpacks/dockerfile.py`` refuses them off
the host's network. Every reading of the file counts, as for images; a
reading Docker cannot parse downloads nothing. A source spelled with a
variable cannot be told from a URL here, and is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from workers.dockerfile_parser import DockerfileError, Refused, Uncheckable
from workers.dockerfile_parser.instructions import Instruction, every_instruction, is_json_form
from workers.dockerfile_parser.lexer import ShellLexer, lstrip, raw_words
from workers.repo_yaml import shorten

#: What BuildKit downloads itself when an ADD source starts with it (git forms included,
#: which newer frontends clone).
_REMOTE_SOURCE = re.compile(r"^(?:https?://|git://|git@|ssh://)", re.IGNORECASE)


@dataclass(frozen=True)
class Download:
    """A URL an ``ADD`` makes the engine download, and where."""

    url: str
    line: int
    how: str  # "ADD" or "ONBUILD ADD"


def downloaded_sources(text: str) -> list[Download]:
    """Every ``ADD`` (or ``ONBUILD ADD``) source that the engine would download from a URL
    rather than take from the context, in any reading of ``text``.

    Raises ``DockerfileError`` for a source spelled with a variable.
    """
    found: dict[tuple[str, int], Download] = {}
    for reading, instruction, how in every_instruction(text, "add"):
        for source in _add_sources(instruction, reading.escape):
            value = _literal_source(source, reading.escape, how, instruction.line)
            if _REMOTE_SOURCE.match(value):
                found.setdefault((value, instruction.line), Download(value, instruction.line, how))
    return sorted(found.values(), key=lambda use: use.line)


def _add_sources(instruction: Instruction, escape: str) -> list[str]:
    """The sources of an ``ADD`` (every word but the destination), as written."""
    if is_json_form(instruction.args):
        words = json.loads(lstrip(instruction.args))
    else:
        words = raw_words(instruction.args, escape)
    return [str(word) for word in words[:-1]]


def _literal_source(source: str, escape: str, how: str, line: int) -> str:
    """``source`` with its quotes and escapes resolved; ``DockerfileError`` when it reads a
    variable (or cannot be lexed, so might)."""
    lexer = ShellLexer(escape)
    try:
        value = lexer.process(source)
    except (Refused, Uncheckable):
        value, lexer.used = source, {"?"}
    if lexer.used:
        raise DockerfileError(
            f"The Dockerfile's {how} on line {line} names a source with a variable "
            f"({shorten(source)}), which this farm cannot check; write it out in full.")
    return value


__all__ = ["Download", "downloaded_sources"]
