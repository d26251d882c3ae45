"""The farm's package sources, and what a repository may not say about them.

Builds install packages only from what the operator configured: the pip
index (``BINDER_PIP_INDEX_URL``), conda channels and CRAN mirror. A
repository cannot replace or extend them:

* pip options that name an index (``--index-url``/``-i``, ``--extra-index-url``,
  ``--trusted-host``, ``--find-links``/``-f`` with a URL, in any spelling pip
  accepts, abbreviations included) are refused with a sentence naming the
  file and line; files pulled in with ``-r``/``-c`` are read the same way,
  and ``-r``/``-c`` with a URL are refused too;
* a requirements file is read as each installer decodes it (a byte-order mark,
  pip's ``coding:`` declaration, else UTF-8: :func:`requirements_readings`), so
  that no encoding hides an option from these checks;
* requirements that name where to download them (``name @ URL``, a bare URL,
  ``git+https://...``) are refused the same way: they would bypass the index;
  so are a Pipfile's ``git`` and ``file`` entries that name one;
* where a config file names its own sources (``environment.yml`` channels,
  a Pipfile's ``[[source]]``, ``repos=`` in ``install.R``), the buildpack uses
  the farm's instead and logs :func:`sources_replaced`'s sentence.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from common.errors import BuildFailure
from workers.config_files import read_config_bytes
from workers.repo_yaml import shorten
from workers.shell_words import shell_words

#: Long options that change where pip looks for packages (``--pypi-url`` is pip's
#: alias of ``--index-url``).
INDEX_OPTIONS = ("--index-url", "--pypi-url", "--extra-index-url", "--trusted-host",
                 "--find-links")
#: Options that pull in another requirements file.
FILE_OPTIONS = ("--requirement", "--constraint")
_ALWAYS_REFUSED = ("--index-url", "--pypi-url", "--extra-index-url", "--trusted-host")
_SHORT = {"-i": "--index-url", "-f": "--find-links", "-r": "--requirement",
          "-c": "--constraint"}
#: pip's other options in a requirements file: written in full they are not abbreviations.
_OTHER_OPTIONS = ("--editable", "--no-index", "--prefer-binary", "--require-hashes",
                  "--no-require-hashes", "--pre", "--all-releases", "--only-final",
                  "--only-binary", "--no-binary", "--use-feature", "--hash", "--config-settings",
                  "--global-option")
#: The options of a requirements file uv reads as pip does, and those it ignores (with a
#: warning) where pip's reading changes nothing a build needs. uv refuses the others
#: (``--global-option``, ``--config-settings``, ``--no-require-hashes``) or ignores them
#: where pip does not (``--pre``).
_UV_READS_ALIKE = frozenset({
    "--requirement", "--constraint", "--editable", "--index-url", "--extra-index-url",
    "--find-links", "--no-index", "--no-binary", "--only-binary", "--trusted-host", "--hash",
    "--require-hashes", "--use-feature", "--prefer-binary"})
#: pip's comment pattern (``req_file.COMMENT_RE``)
_COMMENT = re.compile(r"(^|\s+)#.*$")
#: a scheme anywhere in a line (``git+https:``, ``name @ https:``, ``name@https:``)
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*):")
#: Schemes after which uv, reading URLs as browsers do (WHATWG), needs no slashes:
#: ``https:host/x`` and ``https:\\host/x`` are ``https://host/x`` to it.
_WEB_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss"})
MAX_FILES = 50
#: Byte-order marks in the order pip's ``auto_decode`` tries them (a UTF-32 LE mark
#: begins with the UTF-16 LE one, which pip takes); uv honours UTF-8's and UTF-16's.
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF32, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF32_LE, "utf-32-le"))
#: pip's PEP 263 declaration, looked for in a comment on the first two lines.
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")


def requirements_readings(data: bytes) -> list[str]:
    """Each text an installer may read from a requirements file's bytes, the first as pip
    reads it: decoded by each byte-order mark it starts with, else by pip's ``coding:``
    declaration, and as UTF-8; newlines as ``\\n``. A codec that is not one, or bytes it
    cannot decode, make the installer fail: such a reading is left out or replaced."""
    texts = [_decoded(data[len(bom):], codec) for bom, codec in _BOMS if data.startswith(bom)]
    if not texts:
        for line in data.split(b"\n")[:2]:
            coding = _CODING.search(line) if line[:1] == b"#" else None
            if coding:
                texts.append(_decoded(data, coding.group(1).decode("ascii")))
                break
    texts.append(_decoded(data.removeprefix(codecs.BOM_UTF8), "utf-8"))
    readings = []
    for text in texts:
        if text is not None and text not in readings:
            readings.append(text.replace("\r\n", "\n").replace("\r", "\n"))
    return readings


def _decoded(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec, "replace")
    except LookupError:  # not a codec, or not a text one (base64): the installer fails
        return None


def _urls(text: str) -> list[tuple[int, str]]:
    """(position, scheme) of every URL in ``text``, as pip or uv could read one: a scheme
    followed by ``//`` (or a backslash), a web scheme with or without them, or a VCS
    scheme (``git+https:``)."""
    found = []
    for match in _SCHEME.finditer(text):
        scheme = match.group(1).lower()
        after = text[match.end():match.end() + 2]
        if (after.startswith(("//", "\\")) or scheme.rpartition("+")[2] in _WEB_SCHEMES
                or "+" in scheme):
            found.append((match.start(), scheme))
    return found


def _is_url(value: str) -> bool:
    return any(position == 0 for position, _ in _urls(value))


def _long_option(token: str) -> tuple[str | None, str | None]:
    """(the index or file option a token may name, its attached value).

    pip (optparse) accepts any unambiguous abbreviation of a long option;
    whatever pip's version, a prefix of an index option is read as one.
    """
    if token.startswith("--"):
        name, has_value, value = token.partition("=")
        if len(name) <= 2 or name in _OTHER_OPTIONS:
            return None, None
        candidates = [option for option in (*INDEX_OPTIONS, *FILE_OPTIONS)
                      if option.startswith(name)]
        if not candidates:
            return None, None
        option = next((o for o in candidates if o in _ALWAYS_REFUSED), candidates[0])
        return option, (value if has_value else None)
    if token[:2] in _SHORT:
        return _SHORT[token[:2]], (token[2:] or None)
    return None, None


def _without_comment(line: str) -> str:
    """``line`` with what ``_COMMENT`` matches removed (a ``#`` that starts the line or
    follows a blank, the blanks before it, the rest of the line), in one pass: the
    pattern's ``\\s+`` tries every run of blanks again from each of its blanks, hours of
    work on a line of a megabyte of blanks."""
    hash_at = line.find("#")
    while hash_at > 0 and not line[hash_at - 1].isspace():  # what \s matches
        hash_at = line.find("#", hash_at + 1)
    return line if hash_at < 0 else line[:hash_at].rstrip()


def logical_lines(text: str) -> list[tuple[int, str]]:
    """pip's reading of a requirements file (``join_lines``, ``ignore_comments``):
    (first line number, line), continuations joined, comments removed."""
    joined: list[tuple[int, str]] = []
    parts: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line
            if parts:
                joined.append((first, "".join([*parts, line])))
                parts = []
            else:
                joined.append((number, line))
        else:
            if not parts:
                first = number
            parts.append(line.strip("\\"))
    if parts:
        joined.append((first, "".join(parts)))
    result = []
    for number, line in joined:
        line = _without_comment(line).strip()
        if line:
            result.append((number, line))
    return result


def _tokens(line: str) -> list[str]:
    """Words as pip splits them, and as plain whitespace does (either reading counts)."""
    try:
        words = shell_words(line)
    except ValueError:
        words = []
    return words + line.split()


def check_requirement_lines(lines: Iterable[tuple[int, str]], where: str,
                            base: Path | None = None, checkout: Path | None = None,
                            seen: set[tuple[Path, ...]] | None = None,
                            unit: str = "line", opened: list[PurePosixPath] | None = None,
                            ) -> None:
    """Refuse index options in pip requirement lines; follow ``-r``/``-c`` files in the checkout.

    ``where`` names the file in messages and ``unit`` what the numbers count
    (``line``, ``entry``); ``base`` is the folder relative paths are read
    from, ``checkout`` the repository root they must stay in; ``opened`` hears
    the repository paths of the files followed (see ``_follow``).
    """
    seen = seen if seen is not None else set()
    for number, line in lines:
        for option, value in _options(line, f"{where} {unit} {number}"):
            if option in FILE_OPTIONS and value and base is not None and checkout is not None:
                for path in _readings(base / value):
                    _follow(path, checkout, seen, opened)
        _check_direct_reference(line, f"{where} {unit} {number}")


def _readings(path: Path) -> list[Path]:
    """The paths an installer may open for a nested ``-r``/``-c``: pip removes ``..``
    from the path (``os.path.abspath``) before the system follows links, the system
    (uv) follows a link before its ``..``; where the two differ, both are read."""
    return list(dict.fromkeys((Path(os.path.normpath(path)), path)))


def options_uv_misreads(texts: Iterable[str]) -> list[str]:
    """The long options in requirements files' ``texts`` that uv does not read as pip
    does, each once, in the order they come (an abbreviation pip accepts counts as
    one): such files install with pip."""
    found: list[str] = []
    for text in texts:
        for _, line in logical_lines(text):
            for token in _tokens(line):
                name = token.partition("=")[0]
                if (name.startswith("--") and name != "--" and name not in _UV_READS_ALIKE
                        and name not in found):
                    found.append(name)
    return found


def check_generated_line(line: str, where: str) -> None:
    """Refuse a requirements line the farm writes from a repository's values (a Pipfile's
    packages) when pip or uv could read more into it than one requirement: a line break
    or control character, a continuation at its end, an index option, or a download URL
    (as in a requirements file, a ``file:`` URL passes)."""
    if not line.isprintable() or line.rstrip().endswith("\\"):
        raise BuildFailure(f"{where} holds a line break or a control character.",
                           suggestions=["Write each value of the entry on one line."])
    for option, _ in _options(line, where):
        if option in FILE_OPTIONS:
            raise BuildFailure(f"{where} (`{shorten(line, 80)}`) reads another requirements "
                               "file.", suggestions=["Name the package, its version or its "
                                                     "path in the repository."])
    _check_direct_reference(line, where)


def _options(line: str, where: str) -> list[tuple[str, str]]:
    """The index and file options ``line`` holds (their values), after refusing those
    that name an index or a URL."""
    found = []
    tokens = _tokens(line)
    for index, token in enumerate(tokens):
        option, value = _long_option(token)
        if option is None:
            continue
        if value is None and index + 1 < len(tokens):
            value = tokens[index + 1]
        _check_option(option, value or "", where, line)
        found.append((option, value or ""))
    return found


def _check_option(option: str, value: str, where: str, line: str) -> None:
    shown = f"{where} (`{shorten(line, 80)}`)"
    file_name = where.split(" ", 1)[0]
    if option in _ALWAYS_REFUSED or (
            option == "--find-links" and _is_url(value)):
        raise BuildFailure(
            f"{shown} names a package index; this farm installs packages only from its own "
            "index.", suggestions=[f"Remove it from {file_name}; list the packages by name "
                                   "(or as wheels in the repository with -f ./folder)."])
    if option in FILE_OPTIONS and _is_url(value):
        raise BuildFailure(
            f"{shown} reads requirements from a URL; this farm reads them only from the "
            "repository.", suggestions=["Commit that file to the repository and name its path."])


def _check_direct_reference(line: str, where: str) -> None:
    """Refuse a requirement that names where to download it (``name @ https://...``, a bare
    URL, ``git+https://...``): pip and uv fetch those past any index. A ``file:`` URL
    names a path in the image and passes."""
    for _, scheme in _urls(line):
        if scheme != "file":
            raise BuildFailure(
                f"{where} (`{shorten(line, 80)}`) installs a package from a URL; this farm "
                "installs packages only from its own index.",
                suggestions=["List the package by name if the farm's index has it; otherwise "
                             "commit its wheel or source to the repository and name its path "
                             "(./wheels/NAME.whl, ./src/NAME)."])


def _follow(path: Path, checkout: Path, seen: set[tuple[Path, ...]],
            opened: list[PurePosixPath] | None = None) -> None:
    """Check the requirements file at ``path`` (as the installer names it) and the files
    it pulls in, which are joined to the folder of ``path``, not of a link's target;
    ``opened`` hears the repository path of each file (as named, and the file a link
    leads to)."""
    try:
        path.resolve()
    except RuntimeError:  # pathlib's resolve() on a link that leads back to itself
        raise BuildFailure(f"{shorten(str(path.name))} is referred to with -r or -c but is "
                           "a link that leads back to itself.",
                           suggestions=["Refer only to files of the repository."]) from None
    try:
        root = checkout.resolve()
        resolved = path.resolve()
        relative = PurePosixPath(resolved.relative_to(root))
        if relative.parts[:1] == (".git",):  # the clone's, never part of a build
            raise ValueError(relative)
    except (OSError, ValueError):
        raise BuildFailure(f"{shorten(str(path.name))} is referred to with -r or -c but lies "
                           "outside the repository.",
                           suggestions=["Refer only to files inside the repository."]) from None
    # the same file named from another folder pulls in other files
    key = (resolved, Path(os.path.normpath(path.parent)), path.parent.resolve())
    if key in seen or not resolved.is_file():
        return  # pip reports a missing file itself
    if opened is not None:
        named = Path(os.path.normpath(path))
        if named.is_relative_to(checkout):
            opened.append(PurePosixPath(named.relative_to(checkout).as_posix()))
        opened.append(relative)
    seen.add(key)
    if len(seen) > MAX_FILES:
        raise BuildFailure(f"The requirements files refer to more than {MAX_FILES} others.",
                           suggestions=["Merge the requirements files."])
    for text in requirements_readings(read_config_bytes(root, relative)):
        check_requirement_lines(logical_lines(text), str(relative), path.parent, checkout, seen,
                                opened=opened)


def check_requirements_file(checkout: Path, relative: str,
                            opened: list[PurePosixPath] | None = None) -> None:
    """Refuse index options in the requirements file ``relative`` and the files it pulls in;
    ``opened`` hears their repository paths (each as named, and where a link leads)."""
    path = checkout / relative
    _follow(path, checkout, set(), opened)


def sources_replaced(file_name: str, declared: Sequence[str], used: Sequence[str]) -> str | None:
    """The build-log sentence when ``file_name`` names package sources the farm replaces.

    ``declared`` are the sources the file names (index URLs, channels, CRAN
    repos), ``used`` the farm's own. ``None`` when the file names none.
    """
    if not declared:
        return None
    named = ", ".join(shorten(source, 80) for source in declared[:5])
    more = f" and {len(declared) - 5} more" if len(declared) > 5 else ""
    farm = ", ".join(used) if used else "its defaults"
    return (f"{file_name} names its own package sources ({named}{more}); this farm uses its "
            f"configured sources instead: {farm}.")


__all__ = ["FILE_OPTIONS", "INDEX_OPTIONS", "check_generated_line", "check_requirement_lines",
           "check_requirements_file", "logical_lines", "options_uv_misreads",
           "requirements_readings", "sources_replaced"]
