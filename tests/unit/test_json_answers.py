"""Answers written by orjson say what Flask's own provider said."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from api.json_answers import OrjsonProvider
from common.models import Status


@dataclasses.dataclass
class Point:
    x: int
    y: str


def answers(value: Any, sort_keys: bool = False) -> tuple[bytes, bytes, str]:
    """The body Flask's provider and ours write for ``value``, and our mimetype."""
    app = Flask(__name__)
    theirs, ours = DefaultJSONProvider(app), OrjsonProvider(app)
    theirs.sort_keys = ours.sort_keys = sort_keys
    with app.app_context():
        answer = ours.response(value)
        return theirs.response(value).get_data(), answer.get_data(), answer.mimetype


ANSWER = {
    "name": "o-r", "status": Status.COMPLETED, "start-time": "2024-01-02T03:04:05+00:00",
    "attempt": 2, "cached": False, "error": None, "ratio": 0.1, "workers": ["a", "b"],
    "phases": {"fetching": {"start": None, "worker": "h"}}, "z-last": 1, "a-first": 2,
}


def test_ascii_answers_are_the_same_bytes_in_the_same_key_order() -> None:
    theirs, ours, mimetype = answers(ANSWER)
    assert ours == theirs and ours.endswith(b"}\n") and mimetype == "application/json"
    theirs, ours, _ = answers(ANSWER, sort_keys=True)
    assert ours == theirs
    theirs, ours, _ = answers([ANSWER, {"k": 1}])
    assert ours == theirs


def test_other_values_read_back_as_flasks() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    value = {"when": when, "day": dt.date(2024, 1, 2), "id": uuid.UUID(int=7),
             "money": decimal.Decimal("1.50"), "point": Point(1, "é"), 3: "int key",
             "text": "naïve ☃", "big": 2**70}
    theirs, ours, _ = answers(value)
    assert json.loads(ours) == json.loads(theirs)
    assert json.loads(ours)["when"] == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert json.loads(answers({"text": "naïve ☃"})[1]) == {"text": "naïve ☃"}


def test_no_answer_may_be_kept_by_a_cache() -> None:
    """The same request later may find another state, or come without the key."""
    app = Flask(__name__)
    ours = OrjsonProvider(app)
    with app.app_context():
        for value in (ANSWER, {"big": 2**70}):  # orjson's answer, and Flask's fallback
            assert ours.response(value).headers["Cache-Control"] == "no-store"
        ours.compact = False  # indented for people
        assert ours.response(ANSWER).headers["Cache-Control"] == "no-store"
