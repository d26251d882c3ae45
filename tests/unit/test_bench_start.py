"""The benchmark asks a start again while the API answers 503, and only then."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from bench.builds import start_build


class Answer:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code, self.body = status, body

    def json(self) -> dict[str, Any]:
        return self.body

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(str(self.status_code))


def lab_answering(*answers: Answer) -> Any:
    queue = list(answers)
    sent: list[str] = []

    def start(url: str, force: bool = False) -> Answer:
        sent.append(url)
        return queue.pop(0)
    return SimpleNamespace(api=SimpleNamespace(start=start), sent=sent)


def test_a_busy_store_is_waited_out() -> None:
    lab = lab_answering(Answer(503, {}), Answer(503, {}), Answer(200, {"name": "b"}))
    assert start_build(lab, "u", time.perf_counter() + 30, poll=0.01) == {"name": "b"}
    assert lab.sent == ["u", "u", "u"]


def test_another_error_is_not_repeated() -> None:
    lab = lab_answering(Answer(422, {}), Answer(200, {}))
    with pytest.raises(requests.HTTPError):
        start_build(lab, "u", time.perf_counter() + 30, poll=0.01)
    assert lab.sent == ["u"]


def test_past_the_deadline_a_503_is_an_error() -> None:
    lab = lab_answering(Answer(503, {}), Answer(200, {}))
    with pytest.raises(requests.HTTPError):
        start_build(lab, "u", time.perf_counter() - 1, poll=0.01)
    assert lab.sent == ["u"]
