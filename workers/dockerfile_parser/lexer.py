"""The lexical rules BuildKit's Dockerfile parser and its shell lexer share.

* a UTF-8 byte-order mark before the file is dropped (``BOM``); lines split
  on ``\\n`` only and lose a trailing ``\\r`` (``trim_newline``);
* whitespace is Go's ``unicode.IsSpace`` (``GO_SPACE``), but instruction
  words split on ASCII blanks only (``WORD_SPLIT``);
* ``raw_words`` splits on unquoted, unescaped whitespace and keeps quotes
  and escapes, as BuildKit's ``parseWords`` does (``ARG`` words, ``ADD``
  sources, heredoc openers);
* ``ShellLexer`` is ``shell.Lex``'s ``ProcessWord``: quotes, escapes and ``$``
  expansion. It raises ``Refused`` where Docker fails and ``Uncheckable``
  for the forms the farm does not evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from workers.dockerfile_parser import Refused, Uncheckable
from workers.repo_yaml import shorten

BOM = "\ufeff"
#: Go's unicode.IsSpace
GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
WORD_SPLIT = re.compile(r"[\t\v\f\r ]+")


def lstrip(text: str) -> str:
    return text.lstrip(GO_SPACE)


def trim_newline(text: str) -> str:
    return text.rstrip("\r\n")


def raw_words(line: str, escape: str) -> list[str]:
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


class ShellLexer:
    """BuildKit's ``shell.Lex`` ``ProcessWord``: quotes, escapes and ``$`` expansion.

    ``${X#p}``, ``${X%p}`` and ``${X/p/r}`` raise ``Uncheckable``; a form Docker
    rejects raises ``Refused``. ``used`` collects the variable names read.
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
        except (Refused, Uncheckable):
            return []
        return [word for word in WORD_SPLIT.split(value.strip(GO_SPACE)) if word]

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
            raise Refused(f"a `{stop}` is missing")
        return "".join(out)

    def _single_quote(self) -> str:
        self._next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise Refused("a single quote is not closed")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def _double_quote(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise Refused("a double quote is not closed")
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
            raise Refused("a ${...} substitution is malformed")
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
            raise Refused("a ${...} substitution uses an unknown modifier")
        word = self._until("}")
        value = self._get(name)
        unset = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else str(value)
        if ch == "+":
            return "" if unset else word
        if unset:
            raise Refused(f"${{{name}}} must be set")
        return str(value)


__all__ = ["BOM", "GO_SPACE", "WORD_SPLIT", "ShellLexer", "lstrip", "raw_words",
           "trim_newline"]
