"""``workers/image_identity.py``: the commit, the base image and the recipe name the image."""

from __future__ import annotations

import re

import pytest

import workers.image_identity as identity
from common.config import load_config
from common.errors import BuildFailure
from common.models import FailureCause

SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIG = load_config(environ={"BINDER_REGISTRY": "127.0.0.1:5000", "BINDER_IMAGE_PREFIX": "b-"})


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    identity._digests.clear()


def test_the_tag_is_the_commit_and_a_short_digest() -> None:
    tag = identity.image_tag(SHA, "sha256:" + "1" * 64)
    assert re.fullmatch(rf"{SHA}-[0-9a-f]{{12}}", tag)
    assert len(tag) <= 128  # Docker's limit for a tag


def test_a_new_base_or_recipe_makes_a_new_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    old = identity.image_tag(SHA, "sha256:" + "1" * 64)
    assert identity.image_tag(SHA, "sha256:" + "2" * 64) != old
    monkeypatch.setattr(identity, "RECIPE_VERSION", identity.RECIPE_VERSION + "-next")
    assert identity.image_tag(SHA, "sha256:" + "1" * 64) != old


def test_the_base_digest_is_asked_once_in_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def digest(config: object, image: str) -> str:
        asked.append(image)
        return "sha256:" + "a" * 64

    monkeypatch.setattr(identity, "manifest_digest", digest)
    image = identity.image_for(CONFIG, "o-r", SHA)
    assert image.startswith(f"127.0.0.1:5000/b-o-r:{SHA}-")
    assert identity.image_for(CONFIG, "o-r", SHA) == image
    assert asked == ["127.0.0.1:5000/binder-base:jupyterlab4"]
    clock = identity.time.monotonic() + identity.BASE_DIGEST_SECONDS + 1
    monkeypatch.setattr(identity.time, "monotonic", lambda: clock)
    identity.image_for(CONFIG, "o-r", SHA)
    assert len(asked) == 2


def test_a_missing_base_image_fails_the_build_with_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "manifest_digest", lambda config, image: None)
    with pytest.raises(BuildFailure, match="is not in the registry") as caught:
        identity.base_digest(CONFIG)
    assert "binder-build base-image" in caught.value.suggestions[0]
    assert caught.value.cause is FailureCause.FARM  # the operators', not the repository's


def test_a_base_image_elsewhere_is_known_by_its_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "manifest_digest", lambda config, image: pytest.fail("asked"))
    pinned = load_config(environ={"BINDER_BASE_IMAGE": "quay.io/x/base@sha256:" + "b" * 64})
    assert identity.base_digest(pinned) == "quay.io/x/base@sha256:" + "b" * 64
    other = load_config(environ={"BINDER_BASE_IMAGE": "quay.io/x/base:1"})
    assert identity.base_digest(other) == "quay.io/x/base:1"
