"""The one door to MongoDB hands out the same handles until the client changes."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure, PyMongoError

from common import db
from common.config import load_config
from common.errors import BadDatabase, NoDatabase


def test_handles_are_made_once_per_client_database_and_name() -> None:
    first = load_config(environ={"MONGO_URL": "mongodb://127.0.0.1:1", "BINDER_MONGO_DB": "a"})
    other_db = first.replace(mongo_db="b")
    builds = db.builds(first)
    assert db.builds(first) is builds and builds.full_name == "a.builds"
    assert db.get_db(first) is db.get_db(first) and db.get_db(first).name == "a"
    assert db.attempts(first).full_name == "a.attempts"
    assert db.templates(first).full_name == "a.templates"
    assert db.builds(other_db).full_name == "b.builds"
    # A new client (another URL, or a forked process) gets handles of its own.
    moved = first.replace(mongo_url="mongodb://127.0.0.1:2")
    assert db.builds(moved) is not builds
    assert db.builds(moved).database.client is db.get_client(moved)
    assert db.builds(moved).full_name == "a.builds"


@pytest.mark.parametrize(("error", "kind", "says"), [
    (AutoReconnect("connection reset"), NoDatabase, "cannot be reached"),
    (NetworkTimeout("timed out"), NoDatabase, "did not answer within BINDER_MONGO_TIMEOUT_MS"),
    (OperationFailure("bad query", 2, {"errmsg": "bad query"}), BadDatabase,
     "answered with an error"),
])
def test_store_failures_say_what_happened(error: PyMongoError, kind: type[Exception],
                                          says: str) -> None:
    with pytest.raises(kind) as raised, db.translate_errors():
        raise error
    assert says in str(raised.value)


def test_what_the_store_answered_is_logged_not_told(caplog: pytest.LogCaptureFixture) -> None:
    failure = OperationFailure("E11000 in farm.builds index owner_1", 11000,
                               {"errmsg": "E11000 in farm.builds index owner_1"})
    with pytest.raises(BadDatabase) as raised, db.translate_errors():
        raise failure
    told = " ".join([raised.value.message, *raised.value.suggestions])
    assert "E11000" not in told and "farm.builds" not in told
    assert "E11000 in farm.builds index owner_1" in caplog.text
