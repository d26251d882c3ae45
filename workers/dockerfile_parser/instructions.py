"""A Dockerfile's lines into instructions, as BuildKit's ``parser.Parse`` forms them.

* the escape character (backslash, or backtick after ``# escape=```)
  continues a line; comment and blank lines inside a continued instruction
  are skipped, so ``FR\\`` + ``OM evil`` is ``FROM evil``;
* heredocs (``RUN <<EOF`` ... ``EOF``) hold data, not instructions;
* leading ``--flag[=value]`` words are the instruction's flags, the rest
  its arguments, as written.

Where Docker versions differ (heredoc support, ``\\\\`` at a line end, the
escape character the directives give) a file has several readings:
``readings`` lists each, and ``Reading.instructions`` parses one, raising
``Refused`` where Docker fails on it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from workers.dockerfile_parser import Refused
from workers.dockerfile_parser.directives import directive_escapes
from workers.dockerfile_parser.lexer import (
    BOM,
    GO_SPACE,
    WORD_SPLIT,
    ShellLexer,
    lstrip,
    raw_words,
    trim_newline,
)
from workers.repo_yaml import shorten

INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
    "workdir"})
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})


@dataclass
class Instruction:
    line: int
    command: str  # lower case
    flags: list[str]
    args: str

    def trigger(self) -> Instruction:
        """The instruction an ``ONBUILD`` (this one) registers for later builds."""
        return _split_command(self.args, self.line)


@dataclass(frozen=True)
class Reading:
    """The file's lines as one Docker version reads them."""

    lines: list[str]
    escape: str
    heredocs: bool
    escaped_escape_continues: bool  # older parsers: "a\\\\" at a line end continues

    def instructions(self) -> list[Instruction]:
        """The instructions of this reading; ``Refused`` when Docker cannot parse it."""
        return list(_instructions(self))


def every_instruction(text: str, command: str) -> Iterator[tuple[Reading, Instruction, str]]:
    """Each ``command`` instruction (lower case) of every reading of ``text`` that Docker
    can parse, with its reading and how it is written: ``COMMAND``, or ``ONBUILD
    COMMAND`` for a trigger (the instruction it registers)."""
    for reading in readings(text):
        try:
            instructions = reading.instructions()
        except Refused:
            continue  # Docker cannot build this reading either
        for instruction in instructions:
            how = command.upper()
            if instruction.command == "onbuild":
                try:
                    instruction, how = instruction.trigger(), f"ONBUILD {how}"
                except Refused:
                    continue
            if instruction.command == command:
                yield reading, instruction, how


def readings(text: str) -> list[Reading]:
    """The readings of ``text`` worth parsing (only where Docker versions could differ),
    newest first."""
    lines = text.removeprefix(BOM).split("\n")
    heredocs = (True, False) if any("<<" in line for line in lines) else (False,)
    found = []
    for escape in sorted(directive_escapes(lines)):
        double = escape * 2
        styles = (False, True) if any(
            line.rstrip(" \t\r\n").endswith(double) for line in lines) else (False,)
        found += [Reading(lines, escape, here, style) for here in heredocs for style in styles]
    return found


def is_json_form(args: str) -> bool:
    """Whether ``args`` are a JSON array of strings (the exec form)."""
    text = lstrip(args)
    if not text.startswith("["):
        return False
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # Docker reads what it cannot decode as the shell form
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _continues(line: str, reading: Reading) -> tuple[str, bool]:
    """(the line without its continuation mark, whether the instruction goes on)."""
    stripped = line.rstrip(" \t")
    if not stripped.endswith(reading.escape):
        return line, False
    before = stripped[:-1]
    if (before.endswith(reading.escape) and not reading.escaped_escape_continues):
        return line, False
    return before, True


def _instructions(reading: Reading) -> Iterator[Instruction]:
    lines = reading.lines
    index, count = 0, len(lines)
    while index < count:
        token = lstrip(trim_newline(lines[index]))
        index += 1
        start = index
        if token.startswith("#"):
            token = ""
        first, more = _continues(token, reading)
        if not more and first == "":
            continue
        parts = [first]
        while more and index < count:
            raw = trim_newline(lines[index])
            index += 1
            stripped = lstrip(raw)
            if stripped.startswith("#") or stripped == "":
                continue
            part, more = _continues(raw, reading)
            parts.append(part)
        line = "".join(parts)
        instruction = _split_command(line, start)
        yield instruction
        if reading.heredocs and _may_hold_heredocs(instruction):
            for name, chomp in _heredoc_names(line):
                while True:
                    if index >= count:
                        raise Refused(f"line {start}: the heredoc {shorten(name)} is never "
                                      "closed")
                    ending = trim_newline(lines[index])
                    index += 1
                    if (ending.lstrip("\t") if chomp else ending) == name:
                        break


def _split_command(line: str, number: int) -> Instruction:
    parts = WORD_SPLIT.split(line.strip(GO_SPACE), maxsplit=1)
    command = parts[0].lower()
    rest, flags = _builder_flags(parts[1]) if len(parts) == 2 else ("", [])
    return Instruction(number, command, flags, rest.strip(GO_SPACE))


def _builder_flags(line: str) -> tuple[str, list[str]]:
    """BuildKit's ``extractBuilderFlags``: leading ``--flag[=value]`` words, and the rest.

    Go walks the line byte by byte (a UTF-8 byte such as 0xA0 counts as a
    space there), so this does too.
    """
    data = line.encode("utf-8", "surrogateescape")
    words: list[bytes] = []
    word = bytearray()
    in_spaces, in_word, in_quote = 0, 1, 2
    phase, quote, blank_ok = in_spaces, 0, False
    parsing_flag_arg, need_flag_arg = False, True
    pos, size = 0, len(data)

    def result(rest: bytes) -> tuple[str, list[str]]:
        return (rest.decode("utf-8", "surrogateescape"),
                [w.decode("utf-8", "surrogateescape") for w in words])

    def escaped(pos: int) -> tuple[int | None, int]:
        """The byte at ``pos``, or the one a backslash there escapes (``None`` when the
        backslash ends the line), and the position after it."""
        if data[pos] != ord("\\"):
            return data[pos], pos + 1
        if pos + 1 == size:
            return None, pos + 1
        return data[pos + 1], pos + 2

    while pos <= size:
        ch = data[pos] if pos < size else -1
        if phase == in_spaces:
            if pos == size:
                break
            if chr(ch) in GO_SPACE:
                pos += 1
                continue
            if not parsing_flag_arg and (ch != ord("-") or pos + 1 == size
                                         or data[pos + 1] != ord("-")):
                return result(data[pos:])
            phase = in_word
        if phase in (in_word, in_quote) and pos == size:
            if bytes(word) != b"--" and (blank_ok or word):
                words.append(bytes(word))
            break
        if phase == in_word:
            if chr(ch) in GO_SPACE:
                phase = in_spaces
                if parsing_flag_arg:
                    words[-1] += b"=" + bytes(word)
                    parsing_flag_arg, need_flag_arg = False, True
                else:
                    if bytes(word) == b"--":
                        return result(data[pos:])
                    if blank_ok or word:
                        if need_flag_arg:
                            parsing_flag_arg = True
                        words.append(bytes(word))
                word, blank_ok = bytearray(), False
                pos += 1
                continue
            if ch == ord("=") and need_flag_arg:
                need_flag_arg = False
            if ch in (ord("'"), ord('"')):
                quote, blank_ok, phase = ch, True, in_quote
                pos += 1
                continue
            value, pos = escaped(pos)
            if value is not None:
                word.append(value)
            continue
        if phase == in_quote:
            if ch == quote:
                phase = in_word
                pos += 1
                continue
            value, pos = escaped(pos)
            if value is None:
                phase = in_word  # a backslash that ends the line ends the quote too
            else:
                word.append(value)
    return result(b"")


def _may_hold_heredocs(instruction: Instruction) -> bool:
    if instruction.command == "onbuild":
        instruction = instruction.trigger()
    return instruction.command in _HEREDOC_INSTRUCTIONS and not is_json_form(instruction.args)


def _heredoc_names(line: str) -> list[tuple[str, bool]]:
    """The heredocs a line opens; none when Docker's lexer fails on the line, as in Docker."""
    try:
        ShellLexer("\\", skip_unset=True).process(line)
    except Refused:
        return []
    names = []
    for word in raw_words(line, "\\"):
        match = _HEREDOC.match(word)
        if not match or not match.group(3):
            continue
        words = ShellLexer("\\", skip_unset=True).words(match.group(3))
        if len(words) == 1:
            names.append((words[0], match.group(2) == "-"))
    return names


__all__ = ["INSTRUCTIONS", "Instruction", "Reading", "is_json_form", "readings"]
