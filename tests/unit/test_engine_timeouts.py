"""A Docker engine that stops answering (stopped, or frozen until the client's timeout)
while a phase reads its image is a service lost, not the build's failure: the phase
waits for the engine and runs again (``workers/outages.py``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests

from common.config import load_config
from workers import built_image
from workers.outages import ServiceLost
from workers.phases import push, template

CONFIG = load_config(environ={})


class FrozenEngine:
    """An SDK client whose every read times out, as a frozen engine's does."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.images = self

    def get(self, image: str) -> Any:
        raise requests.ReadTimeout("Read timed out. (read timeout=60)")


def engine_gone(config: Any) -> ServiceLost:
    return ServiceLost("the Docker engine", lambda: None)


class Guard:
    reason: BaseException | None = None


@pytest.fixture(autouse=True)
def frozen_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine the image is read from is frozen, and losing it is a service lost."""
    monkeypatch.setattr(built_image, "docker_client", FrozenEngine)
    monkeypatch.setattr(built_image, "engine_lost", engine_gone)


def phase_without_facts() -> Any:
    """A phase whose record lacks the image's facts (its build phase ran before records
    kept them): they are read from the engine."""
    return SimpleNamespace(record={"name": "owner-repo"}, config=CONFIG,
                           image="r/owner-repo:abc", guard=Guard())


def test_a_template_phase_whose_engine_does_not_answer_waits_for_it() -> None:
    with pytest.raises(ServiceLost) as raised:
        template.run(phase_without_facts())
    assert isinstance(raised.value.__cause__, requests.ReadTimeout)


def test_reading_an_image_from_an_engine_that_does_not_answer_waits_for_it() -> None:
    """What the build phase reads of the image it built."""
    with pytest.raises(ServiceLost) as raised:
        built_image.read_facts(CONFIG, Guard(), "sha256:abc", None)  # type: ignore[arg-type]
    assert isinstance(raised.value.__cause__, requests.ReadTimeout)


def test_verifying_an_image_on_an_engine_that_does_not_answer_waits_for_it() -> None:
    with pytest.raises(ServiceLost) as raised:
        push.verify(phase_without_facts())
    assert isinstance(raised.value.__cause__, requests.ReadTimeout)
