"""What the template takes from the built image (its CMD, its interfaces label) is
bounded: a repository's own Dockerfile sets both."""

from __future__ import annotations

import shlex

import pytest

from common.errors import BuildFailure
from common.models import FailureCause
from workers.binder_yml import MAX_COMMAND_CHARS
from workers.built_image import (
    INTERFACES_LABEL,
    MAX_COMMAND_WORDS,
    MAX_INTERFACE_CHARS,
    MAX_INTERFACES,
    image_facts,
)


def described(cmd: list[str] | None = None, interfaces: str | None = None) -> dict:
    labels = {} if interfaces is None else {INTERFACES_LABEL: interfaces}
    return {"Config": {"Cmd": cmd, "Labels": labels}}


def test_an_image_within_the_bounds_gives_its_command_and_interfaces() -> None:
    assert image_facts(described(["voila", "app.ipynb"], " lab, notebook,")) == (
        ["voila", "app.ipynb"], ["lab", "notebook"])
    assert image_facts(described()) == ([], [])


def test_the_largest_command_allowed_is_taken() -> None:
    cmd = ["x" * (MAX_COMMAND_CHARS - 5), "abcd"]
    assert len(shlex.join(cmd)) == MAX_COMMAND_CHARS
    assert image_facts(described(cmd))[0] == cmd


@pytest.mark.parametrize(("cmd", "says"), [
    (["x" * (MAX_COMMAND_CHARS + 1)], f"at most {MAX_COMMAND_CHARS} characters"),
    (["run", "a b" * MAX_COMMAND_CHARS], f"at most {MAX_COMMAND_CHARS} characters"),
    (["a"] * (MAX_COMMAND_WORDS + 1), f"at most {MAX_COMMAND_WORDS} words"),
])
def test_a_command_too_long_fails_the_build_saying_what_to_do(cmd: list[str], says: str) -> None:
    with pytest.raises(BuildFailure) as failed:
        image_facts(described(cmd))
    assert says in failed.value.message
    assert "CMD" in failed.value.message
    assert len(failed.value.message) < 500  # the command itself is not quoted back
    assert failed.value.cause is FailureCause.REPOSITORY
    assert any("CMD" in line for line in failed.value.suggestions)


@pytest.mark.parametrize(("label", "says"), [
    (",".join(f"ui{n}" for n in range(MAX_INTERFACES + 1)), f"at most {MAX_INTERFACES}"),
    ("lab," + "x" * (MAX_INTERFACE_CHARS + 1), f"at most {MAX_INTERFACE_CHARS} characters"),
    ("lab," + "x" * 10_000_000, f"at most {MAX_INTERFACE_CHARS} characters"),
])
def test_an_interfaces_label_too_large_fails_the_build_saying_what_to_do(
        label: str, says: str) -> None:
    with pytest.raises(BuildFailure) as failed:
        image_facts(described(["voila"], label))
    assert says in failed.value.message
    assert INTERFACES_LABEL in failed.value.message
    assert len(failed.value.message) < 500
    assert failed.value.cause is FailureCause.REPOSITORY
    assert any(INTERFACES_LABEL in line for line in failed.value.suggestions)


def test_the_most_interfaces_allowed_are_taken() -> None:
    names = [f"{n}".rjust(MAX_INTERFACE_CHARS, "u") for n in range(MAX_INTERFACES)]
    assert image_facts(described(None, ",".join(names)))[1] == names
