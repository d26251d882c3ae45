"""``common/naming.py``: build names, display names and image names."""

from __future__ import annotations

import re

import pytest

from common.naming import (
    MAX_NAME_LENGTH,
    build_name,
    display_name,
    identity,
    image_name,
    image_repository,
    preferred_name,
    safe_name_part,
    suffixed_name,
)

# A path component of an image reference, as the distribution spec defines it.
DOCKER_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def test_build_name_is_owner_dash_repo() -> None:
    assert build_name("jupyter", "notebook") == "jupyter-notebook"


def test_build_name_appends_the_ref() -> None:
    assert build_name("jupyter", "notebook", "v1.0") == "jupyter-notebook-v1.0"
    assert build_name("o", "r", None) == build_name("o", "r", "") == "o-r"


def test_build_name_is_lower_case() -> None:
    assert build_name("Jupyter", "NoteBook", "Main") == "jupyter-notebook-main"


@pytest.mark.parametrize(("ref", "expected"), [
    ("feature/x", "o-r-feature-x"),
    ("a+b@c", "o-r-a-b-c"),
    ("v1.0_rc", "o-r-v1.0_rc"),
    ("--weird--", "o-r-weird"),
])
def test_build_name_replaces_unsafe_characters(ref: str, expected: str) -> None:
    assert build_name("o", "r", ref) == expected


def test_safe_name_part_never_returns_an_empty_part() -> None:
    assert safe_name_part("///") == "x"
    assert safe_name_part("-.-") == "x"
    assert safe_name_part("Hello World!") == "hello-world"


def test_name_at_the_limit_is_kept_whole() -> None:
    ref = "r" * (MAX_NAME_LENGTH - len("o-r-"))
    name = build_name("o", "r", ref)
    assert len(name) == MAX_NAME_LENGTH
    assert name == f"o-r-{ref}"


def test_long_names_are_bounded_and_stay_distinct() -> None:
    shared = "feature-" + "x" * 300
    first = build_name("owner", "repo", shared + "-one")
    second = build_name("owner", "repo", shared + "-two")
    assert len(first) <= MAX_NAME_LENGTH and len(second) <= MAX_NAME_LENGTH
    assert first != second
    assert first.startswith("owner-repo-feature-xxx")
    assert re.search(r"-[0-9a-f]{10}$", first)
    assert build_name("owner", "repo", shared + "-one") == first  # deterministic


def test_display_name() -> None:
    assert display_name("o", "r") == "o/r"
    assert display_name("o", "r", "feature/x") == "o/r/tree/feature/x"


def test_image_name_is_registry_prefix_name_and_tag() -> None:
    sha = "a" * 40
    assert image_repository("127.0.0.1:5000", "binder-", "o-r") == "127.0.0.1:5000/binder-o-r"
    assert image_name("127.0.0.1:5000", "binder-", "o-r", sha) == \
        f"127.0.0.1:5000/binder-o-r:{sha}"


@pytest.mark.parametrize(("owner", "repo", "ref"), [
    ("jupyter", "notebook", None),
    ("o", "r", "feature/x"),
    ("o", "r", "v1.0"),
    ("o", "r", "x" * 400),
])
def test_ordinary_names_are_valid_image_components(owner: str, repo: str,
                                                   ref: str | None) -> None:
    assert DOCKER_COMPONENT.match("binder-" + build_name(owner, repo, ref))


@pytest.mark.parametrize(("owner", "repo", "ref"), [
    ("_group", "repo", None),       # GitLab groups may start with '_'
    ("owner", "repo_", None),       # GitHub repositories may end with '_'
    ("o", "r", "fix_-thing"),
    ("o", "r", "v1.-rc"),
])
def test_every_accepted_name_is_a_valid_image_component(owner: str, repo: str,
                                                        ref: str | None) -> None:
    assert DOCKER_COMPONENT.match("binder-" + build_name(owner, repo, ref))


def test_preferred_name_joins_any_pieces() -> None:
    assert preferred_name(("gitlab", "Group", "sub", "project", "feature/x")) == \
        "gitlab-group-sub-project-feature-x"
    assert preferred_name(("zenodo", "3232985")) == "zenodo-3232985"
    assert preferred_name(["o", "r", ""]) == build_name("o", "r")


def test_a_suffixed_name_is_distinct_per_repository_and_bounded() -> None:
    first = suffixed_name("a-b-c", identity("https://github.com/a/b-c", None))
    second = suffixed_name("a-b-c", identity("https://github.com/a-b/c", None))
    third = suffixed_name("a-b-c", identity("https://github.com/a/b", "c"))
    assert len({first, second, third}) == 3
    assert all(re.fullmatch(r"a-b-c-[0-9a-f]{8}", name) for name in (first, second, third))
    long = suffixed_name("x" * MAX_NAME_LENGTH, "key", 16)
    assert len(long) <= MAX_NAME_LENGTH and long.endswith(suffixed_name("x", "key", 16)[2:])


def test_identity_tells_a_ref_from_no_ref() -> None:
    assert identity("https://host/o/r", None) == identity("https://host/o/r", "")
    assert identity("https://host/o/r", None) != identity("https://host/o/r", "main")
