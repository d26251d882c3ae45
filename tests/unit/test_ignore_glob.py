"""``workers/ignore_glob.py``: ignore-file patterns match as docker-py's expressions do,
in time that no pattern can make grow without end."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from docker.utils.fnmatch import translate

from workers.dockerignore import kept_paths
from workers.ignore_glob import GlobPattern

PIECES = ["a", "b", "/", "*", "**", "**/", "?", "[ab]", "[!a]", "[^b]", "[", ".", "\n"]
PATH_CHARS = "ab/.\n"


def docker_py_matches(pattern: str, path: str) -> bool:
    return re.compile(translate(pattern)).match(path) is not None


# "[[ab]" is a set in a set to Python's engine, which warns that it may read it so one day.
@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
def test_every_short_pattern_matches_as_docker_pys_expression_does() -> None:
    chosen = random.Random(20261201)
    patterns = ["".join(chosen.choices(PIECES, k=chosen.randint(0, 6))) for _ in range(600)]
    patterns += ["**", "**/", "*", "a/**", "**/a", "a/**/b", "*.b", "**/*.b", "[!a]*"]
    paths = ["".join(chars) for size in range(5) for chars in
             itertools.product("ab/.", repeat=size)]
    paths += ["".join(chosen.choices(PATH_CHARS, k=chosen.randint(5, 12))) for _ in range(60)]
    for pattern in patterns:
        glob = GlobPattern(pattern)
        for path in paths:
            assert glob.match(path) == docker_py_matches(pattern, path), (pattern, path)


def test_an_invalid_character_range_is_refused_as_docker_pys_is() -> None:
    with pytest.raises(re.error):
        GlobPattern("[z-a]")


@pytest.mark.parametrize(("pattern", "matched"), [
    ("**/" * 40 + "b", "a/" * 300 + "b"), ("*a" * 60 + "b", "a" * 60 + "b"),
    ("a**" * 40 + "b", "a" * 40 + "b")])
def test_many_wildcards_against_a_long_path_end_with_the_right_answer(pattern: str,
                                                                       matched: str) -> None:
    # Each of these makes Python's backtracking engine try more ways than it can in any
    # build's time (seven of the first took 40 s against 60 folders).
    deep = "a/" * 300 + "c"
    assert GlobPattern(pattern).match(deep) is False
    assert GlobPattern(pattern).match("a" * 250) is False

    assert GlobPattern(pattern).match(matched)


def test_a_hostile_ignore_file_leaves_the_repository_in(tmp_path: Path) -> None:
    checkout = tmp_path / "repo"
    deep = checkout.joinpath(*["a"] * 60)
    deep.mkdir(parents=True)
    (deep / "c.txt").write_text("kept")
    (checkout / "b").write_text("ignored")
    kept = kept_paths(checkout, ["**/" * 12 + "b", "*a" * 30 + "b"])
    assert "b" not in kept
    assert "/".join(["a"] * 60 + ["c.txt"]) in kept


def test_wildcards_in_a_row_are_one_step() -> None:
    # ``**/**/`` is ``**/``, and ``**/`` before a final ``**`` adds nothing: a pattern's
    # steps that take no character are never more than one in a row.
    assert [step.kind for step in GlobPattern("**/" * 1000 + "b").steps] == \
        ["double_star", "char"]
    assert [step.kind for step in GlobPattern("a/" + "**/" * 10 + "**").steps] == \
        ["char", "char", "rest"]
    assert GlobPattern("**/" * 1000 + "b").match("x/y/b")


def test_a_path_without_the_patterns_literal_ends_is_refused_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The common ``**/*.pyc``: most paths do not end in ``.pyc``, and they are told
    apart by their ends, without matching the pattern's steps."""
    import workers.ignore_glob as ignore_glob

    stepped: list[str] = []
    real_mask = ignore_glob._mask
    monkeypatch.setattr(ignore_glob, "_mask",
                        lambda path, test: stepped.append(path) or real_mask(path, test))
    for pattern, path, matches in [("**/*.pyc", "src/app.py", False),
                                   ("**/*.pyc", "src/app.pyc", True),
                                   ("docs/**/*.md", "src/notes.md", False),
                                   ("docs/**/*.md", "docs/a/notes.md", True)]:
        assert GlobPattern(pattern).match(path) is matches, (pattern, path)
        assert docker_py_matches(pattern, path) is matches
    assert stepped and not {"src/app.py", "src/notes.md"} & set(stepped)
