"""Which images a Dockerfile makes the Docker engine pull, found as Docker finds them.

The farm checks a repository's Dockerfile against ``BINDER_ALLOWED_BASE_IMAGES``
before building it, so this module must see every image the engine would
pull, however the file is spelled. It follows BuildKit's Dockerfile parser:

* a UTF-8 byte-order mark is dropped; parser directives (``# escape=``,
  ``# syntax=``, ``# check=``) are read from the top of the file only;
* the escape character (backslash, or backtick after ``# escape=```)
  continues a line; comment and blank lines inside a continued instruction
  are skipped, so ``FR\\`` + ``OM evil`` is ``FROM evil``;
* lines split on ``\\n`` only, whitespace is Go's (``unicode.IsSpace``);
* heredocs (``RUN <<EOF`` ... ``EOF``) hold data, not instructions;
* ``ARG`` lines before the first ``FROM`` (with the farm's build args and
  BuildKit's automatic platform args) expand ``FROM`` as Docker's shell
  lexer does (quotes, escapes, ``$X``, ``${X}``, ``${X:-word}``, ...);
* a ``FROM``, ``COPY --from`` or ``RUN --mount=from=`` naming an earlier
  stage (by name or index) or ``scratch`` pulls nothing; anything else is
  an image, and so is the frontend a ``# syntax`` line (or ``//syntax``, or
  a JSON ``{"syntax": ...}``) names, and what ``ONBUILD`` triggers name.

Where Docker versions differ (heredoc support, ``\\\\`` at a line end, which
directives end the directive block) every reading is parsed and the images
of all of them count. A spelling the farm cannot evaluate (a variable in
``--mount`` ``from=``, ``${X#pattern}`` in ``FROM``) is refused rather than
guessed. Everything is a single pass per reading: time grows linearly with
the file (``bench/dockerfile_parse.py``).

The same readings give the URLs an ``ADD`` makes the engine download
(``downloaded_sources``), which it fetches on its own network, not the build's.
"""

from __future__ import annotations

import csv
import json
import platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from workers.repo_yaml import shorten

BOM = "\ufeff"
#: Go's unicode.IsSpace
GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WORD_SPLIT = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE_KEY = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=")
_GO_REGEX_SPACE = "\t\n\f\r "
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
    "workdir"})
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
_JSON_FORM = frozenset({"add", "cmd", "copy", "entrypoint", "run", "shell", "volume"})


class DockerfileError(ValueError):
    """The Dockerfile cannot be checked; ``str()`` is a sentence for the user."""


@dataclass(frozen=True)
class ImageUse:
    """An image the build would pull: its name as written (expanded) and where."""

    image: str
    line: int
    how: str  # "FROM", "COPY --from", "RUN --mount from=", "# syntax", "ONBUILD COPY --from"


@dataclass(frozen=True)
class _Dialect:
    escape: str
    heredocs: bool
    escaped_escape_continues: bool  # older parsers: "a\\\\" at a line end continues


@dataclass
class _Instruction:
    line: int
    command: str  # lower case
    flags: list[str]
    args: str
    original: str


class _Refused(Exception):
    """This reading of the file fails in Docker too (so it pulls nothing)."""


def _lstrip(text: str) -> str:
    return text.lstrip(GO_SPACE)


def _trim_newline(text: str) -> str:
    return text.rstrip("\r\n")


# Directives.

def _directive(body: str) -> tuple[str, str] | None:
    """``KEY=VALUE`` (the text after the comment mark), as BuildKit's directive regex reads it.

    Written without a regex on purpose: ``(.+?)\\s*$`` backtracks
    quadratically on a long line of spaces.
    """
    match = _DIRECTIVE_KEY.match(body)
    if not match:
        return None
    value = body[match.end():].strip(_GO_REGEX_SPACE)
    return (match.group(1).lower(), value) if value else None

def _directive_escapes(lines: list[str]) -> set[str]:
    """The escape characters the Docker versions in use would take from the top lines.

    Older parsers allow whitespace before ``#`` and know ``escape`` and
    ``syntax``; newer ones also know ``check``. A directive error (a repeated
    directive, an unknown escape) makes that version fail: it adds nothing.
    """
    escapes: set[str] = set()
    for keys, lenient in (({"escape", "syntax"}, True), ({"escape", "syntax", "check"}, True),
                          ({"escape", "syntax", "check"}, False)):
        seen: dict[str, str] = {}
        failed = False
        for raw in lines:
            token = _trim_newline(raw)
            if lenient:
                token = _lstrip(token)
                found = _directive(token[1:].lstrip(_GO_REGEX_SPACE)) if token[:1] == "#" \
                    else None
            else:
                found = _directive(_lstrip(token[1:])) if token[:1] == "#" else None
            if not found or found[0] not in keys:
                break
            key, value = found
            if key in seen or (key == "escape" and value not in ("\\", "`")):
                failed = True
                break
            seen[key] = value
        if not failed:
            escapes.add(seen.get("escape", "\\"))
    return escapes


def syntax_images(text: str) -> list[ImageUse]:
    """Frontend images a ``syntax`` directive names, in every form BuildKit reads."""
    found: list[ImageUse] = []
    body = text.removeprefix(BOM)
    lines = body.split("\n")
    offset = 0
    if lines and lines[0].startswith("#!"):
        lines, offset = lines[1:], 1
    for prefix, lenient in (("#", True), ("#", False), ("//", False)):
        for number, raw in enumerate(lines, start=1 + offset):
            token = _trim_newline(raw)
            if lenient:
                token = _lstrip(token)
            if not token.startswith(prefix):
                break
            directive = _directive(_lstrip(token[len(prefix):]))
            if not directive or directive[0] not in {"escape", "syntax", "check"}:
                break
            if directive[0] == "syntax":
                found.append(ImageUse(directive[1].split(" ", 1)[0], number,
                                      f"{prefix} syntax"))
    if body.lstrip(GO_SPACE).startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("syntax"), str):
            found.append(ImageUse(data["syntax"].split(" ", 1)[0], 1, "JSON syntax"))
    return found


# Lines into instructions.

def _continues(line: str, dialect: _Dialect) -> tuple[str, bool]:
    """(the line without its continuation mark, whether the instruction goes on)."""
    stripped = line.rstrip(" \t")
    if not stripped.endswith(dialect.escape):
        return line, False
    before = stripped[:-1]
    if (before.endswith(dialect.escape) and not dialect.escaped_escape_continues):
        return line, False
    return before, True


def _instructions(lines: list[str], dialect: _Dialect) -> Iterator[_Instruction]:
    """The instructions of one reading, as BuildKit's ``parser.Parse`` forms them."""
    index, count = 0, len(lines)
    while index < count:
        token = _lstrip(_trim_newline(lines[index]))
        index += 1
        start = index
        if token.startswith("#"):
            token = ""
        first, more = _continues(token, dialect)
        if not more and first == "":
            continue
        parts = [first]
        while more and index < count:
            raw = _trim_newline(lines[index])
            index += 1
            stripped = _lstrip(raw)
            if stripped.startswith("#") or stripped == "":
                continue
            part, more = _continues(raw, dialect)
            parts.append(part)
        line = "".join(parts)
        instruction = _split_command(line, start)
        yield instruction
        if dialect.heredocs and _may_hold_heredocs(instruction):
            for name, chomp in _heredoc_names(line):
                while True:
                    if index >= count:
                        raise _Refused(f"line {start}: the heredoc {shorten(name)} is never "
                                       "closed")
                    ending = _trim_newline(lines[index])
                    index += 1
                    if (ending.lstrip("\t") if chomp else ending) == name:
                        break


def _split_command(line: str, number: int) -> _Instruction:
    parts = _WORD_SPLIT.split(line.strip(GO_SPACE), maxsplit=1)
    command = parts[0].lower()
    rest, flags = _builder_flags(parts[1]) if len(parts) == 2 else ("", [])
    return _Instruction(number, command, flags, rest.strip(GO_SPACE), line)


def _builder_flags(line: str) -> tuple[str, list[str]]:
    """BuildKit's ``extractBuilderFlags``: leading ``--flag[=value]`` words.

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

    def decode(raw: bytes) -> str:
        return raw.decode("utf-8", "surrogateescape")

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
                return decode(data[pos:]), [decode(w) for w in words]
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
                        return decode(data[pos:]), [decode(w) for w in words]
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
            if ch == ord("\\"):
                if pos + 1 == size:
                    pos += 1
                    continue
                pos += 1
                ch = data[pos]
            word.append(ch)
            pos += 1
            continue
        if phase == in_quote:
            if ch == quote:
                phase = in_word
                pos += 1
                continue
            if ch == ord("\\"):
                if pos + 1 == size:
                    phase = in_word
                    pos += 1
                    continue
                pos += 1
                ch = data[pos]
            word.append(ch)
            pos += 1
    return "", [decode(w) for w in words]


def _is_json_form(args: str) -> bool:
    text = _lstrip(args)
    if not text.startswith("["):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _may_hold_heredocs(instruction: _Instruction) -> bool:
    command, args = instruction.command, instruction.args
    if command == "onbuild":
        inner = _split_command(args, instruction.line)
        command, args = inner.command, inner.args
    return command in _HEREDOC_INSTRUCTIONS and not _is_json_form(args)


def _heredoc_names(line: str) -> list[tuple[str, bool]]:
    """The heredocs a line opens; none when Docker's lexer fails on the line, as in Docker."""
    try:
        ShellLexer("\\", skip_unset=True).process(line)
    except _Refused:
        return []
    names = []
    for word in _raw_words(line, "\\"):
        match = _HEREDOC.match(word)
        if not match or not match.group(3):
            continue
        words = ShellLexer("\\", skip_unset=True).words(match.group(3))
        if len(words) == 1:
            names.append((words[0], match.group(2) == "-"))
    return names


def _raw_words(line: str, escape: str) -> list[str]:
    """Words split on unquoted, unescaped whitespace; quotes and escapes kept."""
    words, word, quote, index = [], [], "", 0
    while index < len(line):
        ch = line[index]
        if quote:
            word.append(ch)
            if ch == quote:
                quote = ""
            elif ch == escape and quote == '"' and index + 1 < len(line):
                index += 1
                word.append(line[index])
        elif ch in GO_SPACE:
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(ch)
            if ch in "'\"":
                quote = ch
            elif ch == escape and index + 1 < len(line):
                index += 1
                word.append(line[index])
        index += 1
    if word:
        words.append("".join(word))
    return words


# Docker's shell lexer, for FROM lines and flag values.

class Uncheckable(Exception):
    """A variable form the farm does not evaluate."""


class ShellLexer:
    """BuildKit's ``shell.Lex`` ``ProcessWord``: quotes, escapes and ``$`` expansion.

    ``${X#p}``, ``${X%p}`` and ``${X/p/r}`` raise ``Uncheckable``; a form Docker
    rejects raises ``_Refused``. ``used`` collects the variable names read.
    With ``skip_unset`` (as BuildKit lexes heredoc lines) unset variables stay
    as written and every modifier is accepted.
    """

    def __init__(self, escape: str, env: Mapping[str, str] | None = None,
                 skip_unset: bool = False) -> None:
        self.escape = escape
        self.env = env or {}
        self.skip_unset = skip_unset
        self.used: set[str] = set()
        self.text = ""
        self.pos = 0

    def process(self, text: str) -> str:
        self.text, self.pos = text, 0
        return self._until(None)

    def words(self, text: str) -> list[str]:
        """``ProcessWords`` with unset variables left as written (heredoc names)."""
        try:
            value = self.process(text)
        except (_Refused, Uncheckable):
            return []
        return [word for word in _WORD_SPLIT.split(value.strip(GO_SPACE)) if word]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1 if ch else 0
        return ch

    def _until(self, stop: str | None) -> str:
        out: list[str] = []
        while self._peek():
            ch = self._peek()
            if stop is not None and ch == stop:
                self._next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
            elif ch == "'":
                out.append(self._single_quote())
            elif ch == '"':
                out.append(self._double_quote())
            else:
                self._next()
                if ch == self.escape:
                    ch = self._next()
                    if not ch:
                        break
                out.append(ch)
        if stop is not None:
            raise _Refused(f"a `{stop}` is missing")
        return "".join(out)

    def _single_quote(self) -> str:
        self._next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise _Refused("a single quote is not closed")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def _double_quote(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise _Refused("a double quote is not closed")
            if ch == '"':
                self._next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self._next()
            if ch == self.escape:
                following = self._peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        ch = self._peek()
        if ch.isdigit():
            start = self.pos
            while self._peek().isdigit():
                self._next()
            return self.text[start:self.pos]
        if ch and ch in "@*#?-$!0":
            return self._next()
        start = self.pos
        while self._peek() and (self._peek().isalnum() or self._peek() == "_"):
            self._next()
        return self.text[start:self.pos]

    def _get(self, name: str) -> str | None:
        self.used.add(name)
        return self.env.get(name)

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._get(name)
            return f"${name}" if value is None and self.skip_unset else (value or "")
        self._next()
        if self._peek() in ("", "{", "}", ":"):
            raise _Refused("a ${...} substitution is malformed")
        name = self._name()
        ch = self._next()
        if ch == "}":
            value = self._get(name)
            return f"${{{name}}}" if value is None and self.skip_unset else (value or "")
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self._next()
        if self.skip_unset:
            if ch == "/" and not null_is_unset:
                self._until("/")
            self._until("}")
            return ""
        if ch in ("#", "%", "/"):
            raise Uncheckable(f"${{{shorten(name)}{ch}...}}")
        if ch not in ("-", "+", "?"):
            raise _Refused("a ${...} substitution uses an unknown modifier")
        word = self._until("}")
        value = self._get(name)
        unset = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else str(value)
        if ch == "+":
            return "" if unset else word
        if unset:
            raise _Refused(f"${{{name}}} must be set")
        return str(value)


# Images of one reading.

def _platform_args() -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(
        platform.machine(), platform.machine())
    values = {"OS": "linux", "ARCH": arch, "VARIANT": "", "PLATFORM": f"linux/{arch}"}
    return {f"{side}{key}": value for side in ("BUILD", "TARGET") for key, value in
            values.items()}


def _arg_words(args: str, escape: str) -> list[str]:
    """BuildKit's ``parseWords`` for ARG: whitespace-split, quotes kept."""
    return _raw_words(args, escape)


def _meta_args(instructions: list[_Instruction], escape: str, base_env: Mapping[str, str],
               build_args: Mapping[str, str]) -> dict[str, str]:
    env = dict(base_env)
    for instruction in instructions:
        if instruction.command == "from":
            break
        if instruction.command != "arg":
            continue
        for word in _arg_words(instruction.args, escape):
            key, has_value, raw = word.partition("=")
            if key in build_args:
                env[key] = build_args[key]
            elif has_value:
                env[key] = ShellLexer(escape, env).process(raw)
    return env


def _is_stage(reference: str, stages: set[str]) -> bool:
    if reference.isdigit():
        return True  # a stage index: never pulled
    return reference.lower() in stages


def _from_images(instruction: _Instruction, stages: set[str], how_prefix: str = ""
                 ) -> Iterator[ImageUse]:
    """Images named by ``COPY --from`` and ``RUN --mount ... from=`` of one instruction."""
    for flag in instruction.flags:
        name, _, value = flag[2:].partition("=")
        name = name.lower()
        if instruction.command == "copy" and name == "from":
            if value and not _is_stage(value, stages):
                yield ImageUse(value, instruction.line, f"{how_prefix}COPY --from")
        elif instruction.command == "run" and name == "mount":
            for source in _mount_sources(value, instruction.line):
                if not _is_stage(source, stages):
                    yield ImageUse(source, instruction.line, f"{how_prefix}RUN --mount from=")


def _mount_sources(value: str, line: int) -> list[str]:
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as exc:
        raise _Refused(f"line {line}: the --mount value is not valid") from exc
    # Also every comma-separated piece with its quotes removed: whatever CSV
    # dialect Docker's version reads, no "from" field goes unseen.
    pieces = [piece.strip().strip("'\"") for piece in value.split(",")]
    sources = []
    for field, strict in [(f, True) for f in fields] + [(p, False) for p in pieces]:
        key, _, raw = field.partition("=")
        if key.strip().strip("'\"").lower() != "from":
            continue
        lexer = ShellLexer("\\")
        try:
            source = lexer.process(raw)
        except _Refused:
            if strict:
                raise
            continue
        if lexer.used:
            raise Uncheckable(f"`RUN --mount from={shorten(raw)}` on line {line}")
        sources.append(source)
    return sources


def _images_of(instructions: list[_Instruction], escape: str,
               build_args: Mapping[str, str]) -> list[ImageUse]:
    """The images one reading pulls, for every set of automatic args Docker may give."""
    for instruction in instructions:
        if instruction.command not in INSTRUCTIONS:
            raise _Refused(f"line {instruction.line}: unknown instruction "
                           f"{shorten(instruction.command.upper())}")
    found: list[ImageUse] = []
    for base_env in ({}, _platform_args()):
        env = _meta_args(instructions, escape, base_env, build_args)
        stages: set[str] = set()
        for instruction in instructions:
            if instruction.command == "from":
                found += _stage_start(instruction, escape, env, stages)
            elif instruction.command == "onbuild":
                inner = _split_command(instruction.args, instruction.line)
                if inner.command in ("from", "onbuild", "maintainer"):
                    raise _Refused(f"line {instruction.line}: ONBUILD {inner.command.upper()} "
                                   "is not allowed")
                found += _from_images(inner, stages, "ONBUILD ")
            else:
                found += _from_images(instruction, stages)
    return found


def _stage_start(instruction: _Instruction, escape: str, env: Mapping[str, str],
                 stages: set[str]) -> list[ImageUse]:
    args = [word for word in _WORD_SPLIT.split(instruction.args) if word]
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _Refused(f"line {instruction.line}: {shorten(args[2])} is not a valid "
                           "stage name")
    elif len(args) != 1:
        raise _Refused(f"line {instruction.line}: FROM takes an image and optionally "
                       "AS NAME")
    else:
        name = ""
    try:
        image = ShellLexer(escape, env).process(args[0])
    except Uncheckable as exc:
        raise Uncheckable(f"`{exc}` on line {instruction.line}") from None
    if not image:
        raise _Refused(f"line {instruction.line}: FROM names no image")
    uses = [] if image == "scratch" or image in stages else [
        ImageUse(image, instruction.line, "FROM")]
    stages.add(name)
    return uses


def _readings(lines: list[str], escapes: set[str]) -> list[_Dialect]:
    """The readings worth parsing (only where Docker versions could differ), newest first."""
    heredocs = (True, False) if any("<<" in line for line in lines) else (False,)
    readings = []
    for escape in sorted(escapes):
        double = escape * 2
        styles = (False, True) if any(
            line.rstrip(" \t\r\n").endswith(double) for line in lines) else (False,)
        readings += [_Dialect(escape, here, style) for here in heredocs for style in styles]
    return readings


def pulled_images(text: str, build_args: Mapping[str, str] | None = None) -> list[ImageUse]:
    """Every image building ``text`` could pull, in order of appearance, without repeats.

    Raises ``DockerfileError`` when Docker could not build the file in any
    reading, or when it uses a variable form the farm cannot check.
    """
    body = text.removeprefix(BOM)
    lines = body.split("\n")
    found: list[ImageUse] = syntax_images(text)
    escapes = _directive_escapes(lines)
    problems: list[str] = []
    parsed = 0
    for dialect in _readings(lines, escapes):
        try:
            instructions = list(_instructions(lines, dialect))
            if not any(i.command == "from" for i in instructions):
                raise _Refused("there is no FROM line")
            found += _images_of(instructions, dialect.escape, build_args or {})
            parsed += 1
        except _Refused as exc:
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


#: What BuildKit downloads itself when an ADD source starts with it (git forms included,
#: which newer frontends clone).
_REMOTE_SOURCE = re.compile(r"^(?:https?://|git://|git@|ssh://)", re.IGNORECASE)


def _add_sources(instruction: _Instruction, escape: str) -> list[str]:
    """The sources of an ``ADD`` (every word but the destination), as written."""
    if _is_json_form(instruction.args):
        words = json.loads(_lstrip(instruction.args))
    else:
        words = _raw_words(instruction.args, escape)
    return [str(word) for word in words[:-1]]


@dataclass(frozen=True)
class Download:
    """A URL an ``ADD`` makes the engine download, and where."""

    url: str
    line: int
    how: str  # "ADD" or "ONBUILD ADD"


def downloaded_sources(text: str) -> list[Download]:
    """Every ``ADD`` (or ``ONBUILD ADD``) source that the engine would download from a URL
    rather than take from the context, in any reading of ``text``.

    BuildKit fetches those itself, on the engine's network, whatever network the
    build's steps run on. A source spelled with a variable cannot be told from a
    URL here, and raises ``DockerfileError``.
    """
    lines = text.removeprefix(BOM).split("\n")
    found: dict[tuple[str, int], Download] = {}
    for dialect in _readings(lines, _directive_escapes(lines)):
        try:
            instructions = list(_instructions(lines, dialect))
        except _Refused:
            continue  # Docker cannot build this reading either
        for instruction in instructions:
            how = "ADD"
            if instruction.command == "onbuild":
                instruction, how = _split_command(instruction.args, instruction.line), \
                    "ONBUILD ADD"
            if instruction.command != "add":
                continue
            for source in _add_sources(instruction, dialect.escape):
                lexer = ShellLexer(dialect.escape)
                try:
                    value = lexer.process(source)
                except (_Refused, Uncheckable):
                    value, lexer.used = source, {"?"}
                if lexer.used:
                    raise DockerfileError(
                        f"The Dockerfile's {how} on line {instruction.line} names a source "
                        f"with a variable ({shorten(source)}), which this farm cannot check; "
                        "write it out in full.")
                if _REMOTE_SOURCE.match(value):
                    found.setdefault((value, instruction.line),
                                     Download(value, instruction.line, how))
    return sorted(found.values(), key=lambda use: use.line)


__all__ = ["DockerfileError", "Download", "ImageUse", "ShellLexer", "downloaded_sources",
           "pulled_images", "syntax_images"]
