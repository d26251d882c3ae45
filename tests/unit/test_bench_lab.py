"""The bench lab finds its base image among the images that inherit its label."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bench.lab import base_of


def image(tags: list[str], layers: int) -> Any:
    return SimpleNamespace(tags=tags, attrs={"RootFS": {"Layers": ["sha256:x"] * layers}})


def test_the_base_is_not_an_image_built_from_it() -> None:
    built = image(["127.0.0.1:4001/hand-bk-1:0"], 12)
    base = image(["127.0.0.1:4000/binder-base:jupyterlab4"], 9)
    farm = image(["127.0.0.1:4001/bench-science-req:abc"], 12)
    assert base_of([built, farm, base]) is base


def test_a_built_image_retagged_as_the_base_by_an_older_run_is_passed_over() -> None:
    spoiled = image(["127.0.0.1:4000/binder-base:jupyterlab4"], 12)
    base = image([], 9)
    assert base_of([spoiled, base]) is base


def test_a_tie_goes_to_the_image_tagged_as_the_base() -> None:
    labelled_only = image(["127.0.0.1:4001/meta-only:1"], 9)
    base = image(["127.0.0.1:4000/binder-base:jupyterlab4"], 9)
    assert base_of([labelled_only, base]) is base
