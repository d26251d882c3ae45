"""The reaper withdraws the image a build left awaiting a verdict when it ended without
its worker (``workers/unverified.py``): which builds, what becomes of the tag, once."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import requests

from common.config import load_config
from common.errors import NoDatabase
from workers import image_rejection, reaper, unverified
from workers.unverified import Next, judge

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = load_config(environ={}, heartbeat_interval=1)  # a quiet window of 3 s
IMAGE = f"127.0.0.1:5000/binder-o-r:{'c' * 40}-0123456789ab"
PREDECESSOR = {"image": IMAGE, "digest": "sha256:predecessor", "named_by": "completed build b0"}


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def record(status: str = "cancelled", ended: float | None = 10, **fields: Any) -> dict[str, Any]:
    return {"build_id": "b1", "name": "o-r", "attempt": 1, "status": status,
            "phase": "pushing", "end_time": None if ended is None else ago(ended),
            "image_name": IMAGE, "unverified_image": IMAGE, **fields}


@pytest.mark.parametrize(("found", "expected"), [
    # Its push phase, or its next attempt's, verifies or withdraws it.
    (record("running", ended=None), Next.WAIT),
    # Ended just now: a worker that was only quiet may still be stopping its push.
    (record(ended=1), Next.WAIT),
    (record("failed", ended=2.9), Next.WAIT),
    (record(ended=3), Next.WITHDRAW),
    (record("failed", ended=600), Next.WITHDRAW),
    (record(ended=None), Next.WITHDRAW),  # an end the record does not date
    # Its image is the one it completed with.
    (record("completed"), Next.FORGET),
])
def test_which_builds_the_reaper_withdraws_the_image_of(found: dict[str, Any],
                                                        expected: Next) -> None:
    assert judge(found, NOW, CONFIG) is expected  # type: ignore[arg-type]


class Builds:
    """The ``builds`` collection, as far as the reaper's withdrawal asks it."""

    def __init__(self, *records: dict[str, Any]) -> None:
        self.records = [dict(found) for found in records]
        self.down = False
        self.queries: list[dict[str, Any]] = []

    def _matches(self, found: dict[str, Any], query: dict[str, Any]) -> bool:
        for field, wanted in query.items():
            value = found.get(field)
            if isinstance(wanted, dict):
                assert list(wanted) == ["$gt"], wanted
                if not isinstance(value, str) or not value > wanted["$gt"]:
                    return False
            elif value != wanted:
                return False
        return True

    def _answer(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        if self.down:
            raise NoDatabase("The build database (MongoDB) cannot be reached.")
        self.queries.append(query)
        return [found for found in self.records if self._matches(found, query)]

    def find(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(found) for found in self._answer(query)]

    def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        found = self._answer(query)
        return dict(found[0]) if found else None

    def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        assert list(update) == ["$set"], update
        for found in self._answer(query)[:1]:
            found.update(update["$set"])


@pytest.fixture
def farm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A store, a registry holding the image under its tag, and the builds' logs."""
    state: dict[str, Any] = {"builds": Builds(), "tags": {IMAGE: "sha256:unverified"},
                             "registry_down": False, "refusal": None, "logs": {},
                             "completed": {}, "restored": [], "checks": 0}

    def builds(config: Any = None) -> Builds:
        return state["builds"]  # type: ignore[no-any-return]

    def answer() -> None:
        if state["registry_down"]:
            raise requests.ConnectionError("connection refused")

    def check_registry(config: Any) -> None:
        state["checks"] += 1
        answer()

    def manifest_digest(config: Any, image: str, timeout: float = 5) -> str | None:
        answer()
        return state["tags"].get(image)  # type: ignore[no-any-return]

    def delete_tag(config: Any, image: str, keep: set[str]) -> bool:
        answer()
        if state["refusal"] is not None:
            raise state["refusal"]
        state["tags"].pop(image, None)
        return True

    def restore_tag(config: Any, image: str, digest: str) -> None:
        answer()
        state["restored"].append(image)
        state["tags"][image] = digest

    class Writer:
        def __init__(self, build_id: str, config: Any = None) -> None:
            if state["builds"].down:
                raise NoDatabase("The build database (MongoDB) cannot be reached.")
            self.lines = state["logs"].setdefault(build_id, [])

        def write(self, line: str) -> None:
            self.lines.append(line)

        def close(self) -> None:
            pass

    monkeypatch.setattr(unverified.db, "builds", builds)
    monkeypatch.setattr(unverified, "check_registry", check_registry)
    monkeypatch.setattr(unverified, "manifest_digest", manifest_digest)
    monkeypatch.setattr(unverified.log_store, "BuildLogWriter", Writer)
    monkeypatch.setattr(image_rejection, "manifest_digest", manifest_digest)
    monkeypatch.setattr(image_rejection, "delete_tag", delete_tag)
    monkeypatch.setattr(image_rejection, "restore_tag", restore_tag)
    monkeypatch.setattr(image_rejection.build_store, "completed_images",
                        lambda name: dict(state["completed"]))
    monkeypatch.setattr(image_rejection.template_store, "find_template", lambda name: None)
    return state


def stored(farm: dict[str, Any], build_id: str = "b1") -> dict[str, Any]:
    found = farm["builds"].find_one({"build_id": build_id})
    assert found is not None
    return found


def test_a_cancelled_build_s_unverified_image_leaves_the_registry_once(
        farm: dict[str, Any]) -> None:
    farm["builds"] = Builds(record())
    assert unverified.withdraw_left(CONFIG, NOW) == 1
    assert IMAGE not in farm["tags"]
    assert farm["logs"]["b1"] == [
        f"{IMAGE} was pushed but not verified: the build was cancelled after the worker "
        "pushing it was lost",
        f"removed {IMAGE} from the registry: it was not verified"]
    found = stored(farm)
    assert found["unverified_image"] is None
    assert found["unverified_withdrawn"] == {"image": IMAGE, "at": NOW}
    assert found["status"] == "cancelled" and found["image_name"] == IMAGE

    # Later passes find nothing to do, and ask only through the field's index.
    farm["tags"][IMAGE] = "sha256:pushed-again"  # by a later build: not this one's to touch
    assert unverified.withdraw_left(CONFIG, NOW + dt.timedelta(minutes=1)) == 0
    assert farm["tags"][IMAGE] == "sha256:pushed-again" and len(farm["logs"]["b1"]) == 2
    assert farm["builds"].queries[-1] == {"unverified_image": {"$gt": ""}}


def test_a_forced_rebuild_s_tag_gets_its_predecessor_s_image_back(
        farm: dict[str, Any]) -> None:
    """The reaper failed the build after too many lost attempts; its push had moved the
    tag of the completed build it rebuilt, which its record kept."""
    farm["builds"] = Builds(record("failed", predecessor=PREDECESSOR))
    farm["completed"] = {IMAGE: "b0"}
    assert unverified.withdraw_left(CONFIG, NOW) == 1
    assert farm["tags"][IMAGE] == "sha256:predecessor"
    assert farm["logs"]["b1"] == [
        f"{IMAGE} was pushed but not verified: the build failed after the worker pushing "
        "it was lost",
        f"restored {IMAGE} to the image of completed build b0"]
    assert stored(farm)["unverified_image"] is None


@pytest.mark.parametrize(("tags", "predecessor", "said"), [
    ({}, None, f"{IMAGE} is not in the registry: nothing to withdraw"),
    ({IMAGE: "sha256:predecessor"}, PREDECESSOR,
     f"{IMAGE} holds the image of completed build b0 as before the push: nothing to "
     "withdraw"),
])
def test_an_image_whose_push_did_not_end_leaves_nothing_to_withdraw(
        farm: dict[str, Any], tags: dict[str, str], predecessor: dict[str, str] | None,
        said: str) -> None:
    """The worker died during the push, before the registry moved the tag."""
    farm["builds"] = Builds(record(predecessor=predecessor))
    farm["tags"] = dict(tags)
    assert unverified.withdraw_left(CONFIG, NOW) == 1
    assert farm["tags"] == tags and farm["restored"] == []
    assert farm["logs"]["b1"] == [said]
    assert stored(farm)["unverified_image"] is None


def test_running_and_recent_builds_wait_and_a_completed_one_is_forgotten(
        farm: dict[str, Any]) -> None:
    farm["builds"] = Builds(record("running", ended=None, build_id="b1"),
                            record(ended=1, build_id="b2"),
                            record("completed", build_id="b3"),
                            record(build_id="b4", unverified_image=None))
    farm["registry_down"] = True  # none of them asks it
    assert unverified.withdraw_left(CONFIG, NOW) == 0
    assert farm["logs"] == {}
    assert [stored(farm, b)["unverified_image"] for b in ("b1", "b2", "b3", "b4")] == [
        IMAGE, IMAGE, None, None]
    assert "unverified_withdrawn" not in stored(farm, "b3")


@pytest.mark.parametrize("fault", ["registry down", "registry drops the delete",
                                   "store down for the log"])
def test_what_cannot_be_done_now_is_done_at_a_later_pass_and_said_once(
        farm: dict[str, Any], fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    farm["builds"] = Builds(record())
    if fault == "registry down":
        farm["registry_down"] = True
    elif fault == "registry drops the delete":
        farm["refusal"] = requests.ConnectionError("connection reset by peer")
    else:
        # The log cannot be written: the tag and the record hold what happened.
        real = farm["builds"]

        def failing_writer(build_id: str, config: Any = None) -> None:
            raise NoDatabase("The build database (MongoDB) cannot be reached.")
        monkeypatch.setattr(unverified.log_store, "BuildLogWriter", failing_writer)
        assert unverified.withdraw_left(CONFIG, NOW) == 1
        assert IMAGE not in farm["tags"] and real.records[0]["unverified_image"] is None
        return
    assert unverified.withdraw_left(CONFIG, NOW) == 0
    assert farm["tags"] == {IMAGE: "sha256:unverified"} and farm["logs"] == {}
    assert stored(farm)["unverified_image"] == IMAGE  # the build stays as it ended
    assert stored(farm)["status"] == "cancelled"

    farm.update(registry_down=False, refusal=None)
    assert unverified.withdraw_left(CONFIG, NOW) == 1
    assert IMAGE not in farm["tags"]
    assert farm["logs"]["b1"][-1] == f"removed {IMAGE} from the registry: it was not verified"
    assert len(farm["logs"]["b1"]) == 2


def test_a_registry_that_does_not_answer_is_asked_once_a_pass(farm: dict[str, Any]) -> None:
    """However many builds wait for it: a frozen one costs the pass its probe's bound."""
    farm["builds"] = Builds(*(record(build_id=f"b{index}") for index in range(5)))
    farm["registry_down"] = True
    assert unverified.withdraw_left(CONFIG, NOW) == 0
    assert farm["checks"] == 1 and farm["logs"] == {}
    farm["registry_down"] = False
    assert unverified.withdraw_left(CONFIG, NOW) == 5
    assert farm["checks"] == 2 and IMAGE not in farm["tags"]


def test_a_registry_that_refuses_the_delete_settles_it_with_a_warning(
        farm: dict[str, Any]) -> None:
    """Asking again would get the same answer (deletes not allowed): said once."""
    response = requests.Response()
    response.status_code = 405
    farm["refusal"] = requests.HTTPError("HTTP 405 The operation is unsupported.",
                                         response=response)
    farm["builds"] = Builds(record())
    assert unverified.withdraw_left(CONFIG, NOW) == 1
    assert farm["logs"]["b1"][-1] == (f"warning: could not remove {IMAGE} from the registry "
                                      "(it was not verified): HTTP 405 The operation is "
                                      "unsupported.")
    assert stored(farm)["unverified_image"] is None
    assert unverified.withdraw_left(CONFIG, NOW) == 0
    assert len(farm["logs"]["b1"]) == 2


def test_a_record_a_new_build_took_meanwhile_is_left_alone(farm: dict[str, Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A forced rebuild replaced the record between the query and the withdrawal: its
    run pushes to the same tag."""
    ended = record()
    farm["builds"] = Builds(record("running", ended=None, build_id="b2"))
    monkeypatch.setattr(unverified, "awaiting", lambda config: [ended])
    assert unverified.withdraw_left(CONFIG, NOW) == 0
    assert farm["tags"] == {IMAGE: "sha256:unverified"} and farm["logs"] == {}


def test_one_build_that_fails_unexpectedly_keeps_no_other_waiting(
        farm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    farm["builds"] = Builds(record(build_id="b1", name="broken"), record(build_id="b2"))
    real = unverified.how_it_ended

    def how_it_ended(found: dict[str, Any]) -> str:
        if found["name"] == "broken":
            raise KeyError("status")
        return real(found)  # type: ignore[arg-type]
    monkeypatch.setattr(unverified, "how_it_ended", how_it_ended)
    assert unverified.withdraw_left(CONFIG, NOW) == 1
    assert stored(farm, "b1")["unverified_image"] == IMAGE  # tried again next pass
    assert stored(farm, "b2")["unverified_image"] is None


def test_a_store_that_stops_answering_ends_the_pass_not_the_reaper(
        farm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    farm["builds"] = Builds(record())
    farm["builds"].down = True
    with pytest.raises(NoDatabase):
        unverified.withdraw_left(CONFIG, NOW)
    # The reaper's pass: the store answered its first questions, then stopped.
    monkeypatch.setattr(reaper.worker_store, "all_workers", lambda: {})
    monkeypatch.setattr(reaper.worker_store, "prune", lambda after: 0)
    monkeypatch.setattr(reaper, "_running_with_lease", lambda config: [])
    monkeypatch.setattr(reaper, "broker_epoch", lambda config: None)
    monkeypatch.setattr(reaper, "unsent_builds", lambda config, hosts: [])
    watch = reaper.StoreWatch(CONFIG)
    assert reaper.reap(None, CONFIG, watch)["withdrawn"] == 0  # type: ignore[arg-type]
    assert watch._failing
    farm["builds"].down = False
    assert reaper.reap(None, CONFIG, watch)["withdrawn"] == 1  # type: ignore[arg-type]


def test_a_withdrawal_says_whether_a_later_try_could_do_better(farm: dict[str, Any]) -> None:
    """What ``withdraw`` did, and whether it is settled (the reaper tries again if not)."""
    said: list[str] = []

    def withdrawal(**change: Any) -> image_rejection.Withdrawal:
        farm.update({"tags": {IMAGE: "sha256:unverified"}, "refusal": None,
                     "registry_down": False, "completed": {}, **change})
        return image_rejection.withdrawal(CONFIG, "o-r", IMAGE, said.append, None,
                                          image_rejection.UNVERIFIED)

    refused = requests.Response()
    refused.status_code = 405
    broken = requests.Response()
    broken.status_code = 503
    assert withdrawal() == image_rejection.Withdrawal(gone=True)
    assert withdrawal(completed={IMAGE: "b0"}) == image_rejection.Withdrawal(gone=False)
    assert withdrawal(refusal=requests.HTTPError("405", response=refused)) \
        == image_rejection.Withdrawal(gone=False)
    for unsettled in (requests.HTTPError("503", response=broken),
                      requests.ConnectionError("refused"), requests.Timeout("slow")):
        assert withdrawal(refusal=unsettled) \
            == image_rejection.Withdrawal(gone=False, settled=False)
    assert all(re.match(r"(removed|warning|\S+ stays)", line) for line in said), said
