"""A repository's ignore file: read as a file of its own, never through a link.

``.dockerignore`` (else ``.containerignore``, as repo2docker reads them) leaves
files out of every build: out of a repository Dockerfile's context, and out of
the repository copied into a generated image. A link of one of those names (or
``<Dockerfile>.dockerignore``, which BuildKit's client prefers) could point at
any file the worker may read, ``/proc/self/environ`` included, and its lines
would steer which files reach the build. Such links are refused; each is
read (or, for the engine, checked) within its cap (``workers/config_files.py``).
A pattern that cannot be matched (``[z-a]``) is refused with its line at detect,
not met as an error while the context is packed.

Every pattern is matched against every path the context's walk meets
(docker's own matcher, :class:`IgnoreMatcher`, with each pattern compiled
once: docker's recompiles them all for each path once a file has more than
100; and matched without backtracking, in time linear in the pattern). That
work is bounded: an ignore file whose patterns times the repository's files
and folders pass ``MAX_MATCHES`` is refused at detect.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from docker.utils.build import Pattern, PatternMatcher

from common.errors import BuildFailure
from workers.config_files import cap_for, check_config_size, read_config_text
from workers.ignore_glob import GlobPattern
from workers.repo_yaml import shorten

#: The ignore files read, most preferred first: the first present one applies.
IGNORE_FILE_NAMES = (".dockerignore", ".containerignore")
#: Longest pattern matched: as long as a path may be (each character is a step of the
#: match, for every path the walk meets).
MAX_PATTERN_CHARS = 4096
#: Pattern-by-path matches packing one context may take, about a microsecond each.
MAX_MATCHES = 20_000_000


class _CompiledPattern(Pattern):
    """docker's ``Pattern``, compiled once into a matcher that does not backtrack
    (``workers/ignore_glob.py``: docker-py's regular expression, matched by Python's
    engine, takes longer than any build for a pattern of a few dozen wildcards);
    docker's ``fnmatch`` compares in lower case, so this does too."""

    def __init__(self, pattern_str: str) -> None:
        super().__init__(pattern_str)
        self.glob = GlobPattern(self.cleaned_pattern.lower())

    def match(self, filepath: str) -> bool:
        return self.glob.match(filepath.lower())


class IgnoreMatcher(PatternMatcher):
    """docker's ``PatternMatcher`` (same paths kept, same walk), each pattern compiled once."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [pattern for pattern in map(_CompiledPattern, patterns)
                         if pattern.dirs]
        self.patterns.append(_CompiledPattern("!.dockerignore"))


def kept_paths(checkout: Path, patterns: list[str], keep: str | None = None) -> set[str]:
    """The repository paths ``patterns`` leave in (and ``keep``, whatever they say), as
    docker's ``exclude_paths`` finds them."""
    return set(IgnoreMatcher(patterns + ([f"!{keep}"] if keep else [])).walk(str(checkout)))


def ignore_files(checkout: Path, dockerfile: PurePosixPath | None = None) -> list[Path]:
    """The ignore files a build of ``dockerfile`` (``None``: a generated one) may read."""
    own = [checkout / f"{dockerfile}.dockerignore"] if dockerfile is not None else []
    return own + [checkout / name for name in IGNORE_FILE_NAMES]


def check_ignore_files(checkout: Path, dockerfile: PurePosixPath | None = None) -> None:
    """``BuildFailure`` when an ignore file is a link (or a folder, or over its cap), or
    when the one the farm applies holds a pattern that cannot be matched."""
    ignore_patterns(checkout, dockerfile)


def _check_files(checkout: Path, dockerfile: PurePosixPath | None) -> None:
    for path in ignore_files(checkout, dockerfile):
        name = PurePosixPath(path.relative_to(checkout).as_posix())
        if path.is_symlink():
            raise BuildFailure(f"{name} is a link; this farm reads it only as a file of the "
                               "repository.", suggestions=[f"Commit {name} itself, not a link."])
        if path.exists() and not path.is_file():
            raise BuildFailure(f"{name} is not a file.", suggestions=[f"Remove {name}."])
        if path.is_file():
            check_config_size(checkout, name)


def ignore_patterns(checkout: Path, dockerfile: PurePosixPath | None = None) -> list[str]:
    """The patterns of the ignore file that applies (comments and blank lines left out);
    ``BuildFailure`` naming the line of one that cannot be matched."""
    _check_files(checkout, dockerfile)
    name = next((name for name in IGNORE_FILE_NAMES if (checkout / name).is_file()), None)
    if name is None:
        return []
    text = read_config_text(checkout, PurePosixPath(name))
    patterns = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if len(line) > MAX_PATTERN_CHARS:
            raise BuildFailure(f"{name} line {number}: a pattern of {len(line)} characters; "
                               f"this farm matches patterns of at most {MAX_PATTERN_CHARS} "
                               "(no path is longer).",
                               suggestions=[f"Shorten that line of {name}: a pattern needs "
                                            "no more characters than the paths it matches."])
        try:
            # the pattern is compiled where it is first matched, inside the context's walk
            PatternMatcher([line]).matches("x")
        except re.error as exc:
            raise BuildFailure(f"{name} line {number}: `{shorten(line)}` is not a pattern "
                               f"files can be matched with ({exc}).",
                               suggestions=[f"Correct or remove that line of {name}."]) from None
        patterns.append(line)
    _check_work(checkout, name, len(patterns))
    return patterns


def _check_work(checkout: Path, name: str, patterns: int) -> None:
    """``BuildFailure`` when matching ``patterns`` (and the few the farm adds: ``.git``,
    ``!.dockerignore``, ``!Dockerfile``) against the repository's paths would pass
    ``MAX_MATCHES`` (its files and folders are counted up to that point, not beyond)."""
    most = MAX_MATCHES // (patterns + 3)
    entries = 0
    for folder, dirs, files in os.walk(checkout):
        if folder == str(checkout) and ".git" in dirs:
            dirs.remove(".git")
            entries += 1
        entries += len(dirs) + len(files)
        if entries > most:
            raise BuildFailure(
                f"{name} holds {patterns} patterns and the repository more than {most} "
                "files and folders: matching each pattern against each path is more work "
                "than this farm does for one build.",
                suggestions=[cap_for(name).advice.format(name=name)])
