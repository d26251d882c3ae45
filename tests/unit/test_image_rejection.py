"""An image that failed verification leaves the registry, unless something stands for it."""

from __future__ import annotations

import contextlib
import pickle
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest
import requests

from common.config import load_config
from common.errors import BuildCancelled, BuildFailure, LeaseLost, NoDatabase
from common.models import FailureCause
from workers import image_rejection
from workers.guard import BuildTimedOut
from workers.phase_runner import PhaseFailure
from workers.phases import push
from workers.stopping import WorkerStopping

CONFIG = load_config(environ={})
REPOSITORY = "127.0.0.1:5000/binder-o-r"
REJECTED = f"{REPOSITORY}:{'c' * 40}-0123456789ab"
EARLIER = f"{REPOSITORY}:{'a' * 40}-0123456789ab"


@pytest.fixture
def farm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A store and a registry; tests fill in what the store holds and the digests."""
    state: dict[str, Any] = {"completed": {}, "template": None, "store_down": False,
                             "digests": {REJECTED: "sha256:rejected"}, "deleted": [],
                             "refusal": None, "restored": []}

    def completed_images(name: str) -> dict[str, str]:
        if state["store_down"]:
            raise NoDatabase("The build database is unreachable.")
        return dict(state["completed"])

    def delete_tag(config: Any, image: str, keep: set[str]) -> bool:
        if state["refusal"] is not None:
            raise state["refusal"]
        state["keep"] = keep
        if state["digests"].get(image) in keep:
            return False
        state["deleted"].append(image)
        return True

    monkeypatch.setattr(image_rejection.build_store, "completed_images", completed_images)
    monkeypatch.setattr(image_rejection.template_store, "find_template",
                        lambda name: state["template"])
    monkeypatch.setattr(image_rejection, "manifest_digest",
                        lambda config, image, timeout: state["digests"].get(image))
    def restore_tag(config: Any, image: str, digest: str) -> None:
        if state["refusal"] is not None:
            raise state["refusal"]
        state["restored"].append((image, digest))
        state["digests"][image] = digest

    monkeypatch.setattr(image_rejection, "delete_tag", delete_tag)
    monkeypatch.setattr(image_rejection, "restore_tag", restore_tag)
    return state


def withdraw(earlier: image_rejection.Predecessor | None = None) -> tuple[bool, list[str]]:
    said: list[str] = []
    return image_rejection.withdraw(CONFIG, "o-r", REJECTED, said.append, earlier), said


PREDECESSOR = image_rejection.Predecessor("sha256:predecessor", "completed build b1")


def test_a_rejected_image_nothing_names_is_removed(farm: dict[str, Any]) -> None:
    farm["completed"] = {EARLIER: "b1"}  # another commit's image, of another digest
    farm["digests"][EARLIER] = "sha256:earlier"
    gone, said = withdraw()
    assert gone and farm["deleted"] == [REJECTED]
    assert farm["keep"] == {"sha256:earlier"}  # its digest is never deleted with it
    assert said == [f"removed {REJECTED} from the registry: it failed verification"]


@pytest.mark.parametrize(("completed", "template", "why"), [
    ({REJECTED: "b1"}, None, "completed build b1 names it"),  # a forced rebuild's predecessor
    ({}, {"image_name": REJECTED}, "the template of o-r names it"),
])
def test_a_tag_a_completed_build_or_the_template_names_stays(
        farm: dict[str, Any], completed: dict[str, str], template: dict[str, str] | None,
        why: str) -> None:
    farm.update(completed=completed, template=template)
    gone, said = withdraw()
    assert not gone and farm["deleted"] == []
    assert said == [f"{REJECTED} stays in the registry: {why}"]


def test_a_digest_a_completed_build_s_tag_shares_stays(farm: dict[str, Any]) -> None:
    """Another commit of the same files made the same image: deleting the manifest
    would take that tag too."""
    farm["completed"] = {EARLIER: "b1"}
    farm["digests"][EARLIER] = "sha256:rejected"
    gone, said = withdraw()
    assert not gone and farm["deleted"] == []
    assert said[0].startswith(f"warning: {REJECTED} stays in the registry: an image a "
                              "completed build names has the same digest")


@pytest.mark.parametrize(("change", "warning"), [
    ({"store_down": True}, "the build database could not say whether a completed build "
                           "names it (The build database is unreachable.)"),
    ({"refusal": requests.HTTPError("HTTP 405 The operation is unsupported.")},
     "HTTP 405 The operation is unsupported."),
    ({"refusal": requests.ConnectionError("connection refused")}, "connection refused"),
])
def test_a_tag_that_cannot_be_removed_is_a_warning(farm: dict[str, Any],
                                                   change: dict[str, Any], warning: str) -> None:
    farm.update(change)
    gone, said = withdraw()
    assert not gone and farm["deleted"] == []
    assert len(said) == 1 and said[0].startswith("warning: ") and said[0].endswith(warning)


def test_a_completed_build_s_tag_gets_its_image_back(farm: dict[str, Any]) -> None:
    """A forced rebuild pushed its predecessor's tag: the tag is the predecessor's again."""
    farm["completed"] = {REJECTED: "b1"}
    gone, said = withdraw(PREDECESSOR)
    assert not gone and farm["deleted"] == []
    assert farm["restored"] == [(REJECTED, "sha256:predecessor")]
    assert said == [f"restored {REJECTED} to the image of completed build b1"]


def test_a_rebuild_of_the_same_image_leaves_the_tag_as_it_was(farm: dict[str, Any]) -> None:
    farm["completed"] = {REJECTED: "b1"}
    farm["digests"][REJECTED] = "sha256:predecessor"
    gone, said = withdraw(PREDECESSOR)
    assert not gone and farm["deleted"] == [] and farm["restored"] == []
    assert said == [f"{REJECTED} stays in the registry as it was: the image that failed "
                    "verification is that of completed build b1 (sha256:predecessor)"]


def test_an_unverified_image_is_withdrawn_in_its_own_words(farm: dict[str, Any]) -> None:
    """A build stopped before verification ended: its image was not rejected."""
    said: list[str] = []
    unverified = image_rejection.UNVERIFIED
    assert image_rejection.withdraw(CONFIG, "o-r", REJECTED, said.append, None, unverified)
    assert said == [f"removed {REJECTED} from the registry: it was not verified"]
    farm.update(completed={REJECTED: "b1"})
    farm["digests"][REJECTED] = "sha256:predecessor"
    assert not image_rejection.withdraw(CONFIG, "o-r", REJECTED, said.append, PREDECESSOR,
                                        unverified)
    assert said[-1] == (f"{REJECTED} stays in the registry as it was: the unverified image "
                        "is that of completed build b1 (sha256:predecessor)")


def test_a_tag_that_cannot_be_restored_is_a_warning(farm: dict[str, Any]) -> None:
    farm.update(completed={REJECTED: "b1"}, refusal=requests.HTTPError("HTTP 404 unknown"))
    gone, said = withdraw(PREDECESSOR)
    assert not gone and farm["restored"] == []
    assert said == [f"warning: could not restore {REJECTED} to the image of completed build "
                    "b1 (sha256:predecessor): HTTP 404 unknown; the tag holds the image that "
                    "failed verification"]


def test_a_predecessor_is_restored_while_the_store_is_down(farm: dict[str, Any]) -> None:
    """Something named the tag before the push: it still does, as far as anyone knows."""
    farm["store_down"] = True
    gone, said = withdraw(PREDECESSOR)
    assert not gone and farm["restored"] == [(REJECTED, "sha256:predecessor")]
    assert said[0].startswith("warning: ")
    assert said[1] == f"restored {REJECTED} to the image of completed build b1"


@pytest.mark.parametrize(("completed", "template", "expected"), [
    ({REJECTED: "b1"}, None, PREDECESSOR),
    ({}, {"image_name": REJECTED},
     image_rejection.Predecessor("sha256:predecessor", "the template of o-r")),
    ({EARLIER: "b1"}, None, None),  # nothing names the tag: it has nothing to get back
])
def test_the_predecessor_is_what_a_named_tag_holds_before_the_push(
        farm: dict[str, Any], completed: dict[str, str], template: dict[str, str] | None,
        expected: image_rejection.Predecessor | None) -> None:
    farm.update(completed=completed, template=template)
    farm["digests"][REJECTED] = "sha256:predecessor"
    said: list[str] = []
    assert image_rejection.predecessor(CONFIG, "o-r", REJECTED, said.append) == expected
    assert said == []


def test_a_predecessor_that_cannot_be_learned_is_a_warning(farm: dict[str, Any]) -> None:
    farm["store_down"] = True
    said: list[str] = []
    assert image_rejection.predecessor(CONFIG, "o-r", REJECTED, said.append) is None
    assert said == [f"warning: could not learn which image {REJECTED} holds before the push; "
                    "if verification fails, the tag keeps the image it rejected (The build "
                    "database is unreachable.)"]


def test_a_tag_the_registry_does_not_hold_has_no_predecessor_without_asking_the_store(
        farm: dict[str, Any]) -> None:
    """The usual push makes a new tag: one request to the registry, none to the store."""
    farm["store_down"] = True  # asked, it would say so
    del farm["digests"][REJECTED]
    said: list[str] = []
    assert image_rejection.predecessor(CONFIG, "o-r", REJECTED, said.append) is None
    assert said == []


@pytest.mark.parametrize(("completed", "warned"), [({REJECTED: "b1"}, True), ({}, False)])
def test_a_registry_that_does_not_answer_is_a_warning_for_a_named_tag_only(
        farm: dict[str, Any], monkeypatch: pytest.MonkeyPatch, completed: dict[str, str],
        warned: bool) -> None:
    def unanswered(config: Any, image: str, timeout: float) -> str:
        raise requests.ConnectionError("refused")
    monkeypatch.setattr(image_rejection, "manifest_digest", unanswered)
    farm.update(completed=completed)
    said: list[str] = []
    assert image_rejection.predecessor(CONFIG, "o-r", REJECTED, said.append) is None
    assert said == ([f"warning: could not learn which image {REJECTED} holds before the "
                     "push; if verification fails, the tag keeps the image it rejected "
                     "(refused)"] if warned else [])


# The push phase


class _Client:
    def close(self) -> None:
        pass


@pytest.fixture
def pushing(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A push phase whose push succeeds and whose verification the test decides."""
    state: dict[str, Any] = {"verdict": None, "withdrawn": [], "unwanted": [],
                             "earlier": None, "asked": 0, "stored": [], "tag": None,
                             "tag_asked": 0}

    def predecessor(config: Any, name: str, image: str, say: Any) -> Any:
        state["asked"] += 1
        return state["earlier"]

    def verify(phase: Any) -> None:
        if state["verdict"] is not None:
            raise state["verdict"]

    monkeypatch.setattr(push, "verify", verify)
    monkeypatch.setattr(push, "push_image", lambda *args, **kwargs: 2048)
    monkeypatch.setattr(push, "docker_client", lambda *args, **kwargs: _Client())
    monkeypatch.setattr(push, "watching", lambda *args: contextlib.nullcontext())
    def withdraw(config: Any, name: str, image: str, say: Any, earlier: Any,
                 unwanted: image_rejection.Unwanted = image_rejection.REJECTED) -> None:
        state["withdrawn"].append((name, image, earlier))
        state["unwanted"].append(unwanted)

    def manifest_digest(config: Any, image: str, timeout: float = 5) -> str | None:
        state["tag_asked"] += 1
        if isinstance(state["tag"], Exception):
            raise state["tag"]
        return state["tag"]  # type: ignore[no-any-return]

    monkeypatch.setattr(push, "withdraw", withdraw)
    monkeypatch.setattr(push, "predecessor", predecessor)
    monkeypatch.setattr(push, "manifest_digest", manifest_digest)
    monkeypatch.setattr(push.build_store, "set_running", lambda build_id, attempt, changes:
                        state["stored"].append((build_id, attempt, changes)))
    return state


def push_run(record: dict[str, Any] | None = None, reason: BaseException | None = None,
             said: list[str] | None = None, phases: list[Any] | None = None) -> Any:
    """Run the push phase; ``reason`` is what its guard stopped it for, if anything;
    ``phases`` gets the phase it ran."""
    guard = SimpleNamespace(on_abort=lambda hook: hook, raise_if_stopped=lambda: None,
                            reason=reason)
    say = (said if said is not None else []).append
    phase = SimpleNamespace(image=REJECTED, record=record or {"name": "o-r"}, config=CONFIG,
                            guard=guard, say=say, build_id="b2", attempt=1)
    if phases is not None:
        phases.append(phase)
    return push.run(phase)  # type: ignore[arg-type]


def test_a_failed_verification_withdraws_the_image_and_names_it_rejected(
        pushing: dict[str, Any]) -> None:
    pushing["verdict"] = BuildFailure("The image exited (status 3).", suggestions=["Fix it."],
                                      cause=FailureCause.VERIFICATION)
    with pytest.raises(PhaseFailure) as failed:
        push_run()
    assert (failed.value.message, failed.value.suggestions, failed.value.cause) == (
        "The image exited (status 3).", ["Fix it."], FailureCause.VERIFICATION)
    # The end of the build says the image awaits no verdict any more.
    assert failed.value.changes == {"image_name": None, "rejected_image": REJECTED,
                                    "unverified_image": None}
    assert pushing["withdrawn"] == [("o-r", REJECTED, None)]


def test_a_rejected_image_gives_its_tag_back_to_what_it_held(pushing: dict[str, Any]) -> None:
    """The push phase learns what the tag held before it pushed, and keeps it in the
    record: run again after its push, it must not take its own image for it."""
    pushing.update(verdict=BuildFailure("The image exited."), earlier=PREDECESSOR)
    record: dict[str, Any] = {"name": "o-r"}
    with pytest.raises(PhaseFailure):
        push_run(record)
    stored = {"image": REJECTED, "digest": "sha256:predecessor",
              "named_by": "completed build b1"}
    assert pushing["stored"] == [("b2", 1, {"predecessor": stored}),
                                 ("b2", 1, {"unverified_image": REJECTED})]
    assert record["predecessor"] == stored
    assert pushing["withdrawn"] == [("o-r", REJECTED, PREDECESSOR)]

    pushing["earlier"] = image_rejection.Predecessor("sha256:rejected", "completed build b1")
    with pytest.raises(PhaseFailure):
        push_run(record)  # the same record: the phase runs again
    assert pushing["asked"] == 1
    assert [changes for _, _, changes in pushing["stored"]].count({"predecessor": stored}) == 1
    assert pushing["withdrawn"][-1] == ("o-r", REJECTED, PREDECESSOR)


def test_a_verified_image_stays_and_is_the_builds(pushing: dict[str, Any]) -> None:
    assert push_run().changes == {"image_source": REJECTED, "pushed_bytes": 2048,
                                  "unverified_image": None}
    assert pushing["withdrawn"] == []


def awaiting(pushing: dict[str, Any]) -> list[str | None]:
    """What the phase wrote, in order, about the image awaiting a verdict."""
    return [changes["unverified_image"] for _, _, changes in pushing["stored"]
            if "unverified_image" in changes]


def test_the_record_names_the_image_awaiting_a_verdict_from_before_the_push_until_it_came(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies in between leaves it named: the reaper withdraws it once the
    build ended (workers/unverified.py)."""
    at_push: list[list[str | None]] = []

    def push_image(*args: Any, **kwargs: Any) -> int:
        at_push.append(awaiting(pushing))
        return 2048

    monkeypatch.setattr(push, "push_image", push_image)
    push_run()
    assert at_push == [[REJECTED]]
    # Cleared as soon as verification said yes: a cancel from then on keeps the image.
    assert awaiting(pushing) == [REJECTED, None]


def test_without_verification_no_image_awaits_a_verdict(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push, "verify", lambda phase: pytest.fail("verified"))
    guard = SimpleNamespace(on_abort=lambda hook: hook, raise_if_stopped=lambda: None,
                            reason=None)
    phase = SimpleNamespace(image=REJECTED, record={"name": "o-r"}, guard=guard,
                            config=load_config(environ={"BINDER_VERIFY": "false"}),
                            say=lambda line: None, build_id="b2", attempt=1)
    assert push.run(phase).changes == {  # type: ignore[arg-type]
        "image_source": REJECTED, "pushed_bytes": 2048}
    assert pushing["stored"] == []


# The push phase stopped after its push, while verification runs


def _timed_out() -> BuildTimedOut:
    return BuildTimedOut("The build timed out after 60 min in phase pushing.")


@pytest.mark.parametrize(("reason", "verdict", "how"), [
    # the guard's reason, raised by verification's own check
    (BuildCancelled("b2"), None, "the build was cancelled"),
    (_timed_out(), None, "the build timed out"),
    (WorkerStopping(), None,
     "its worker is stopping; the next worker pushes and verifies it again"),
    # the stop removed the container first: the image seemed to exit
    (BuildCancelled("b2"), BuildFailure("The image exited (status 137)."),
     "the build was cancelled"),
])
def test_a_phase_stopped_after_its_push_withdraws_the_unverified_image(
        pushing: dict[str, Any], reason: Exception, verdict: Exception | None,
        how: str) -> None:
    """It ends as the stop says (the build stays cancelled, times out, is handed back),
    and its record keeps naming the image it made, as a build stopped earlier does."""
    pushing.update(verdict=verdict or reason, earlier=PREDECESSOR)
    said: list[str] = []
    with pytest.raises(type(reason)) as ended:
        push_run(reason=reason, said=said)
    assert ended.value is reason and not isinstance(ended.value, PhaseFailure)
    assert pushing["withdrawn"] == [("o-r", REJECTED, PREDECESSOR)]
    assert pushing["unwanted"] == [image_rejection.UNVERIFIED]
    assert said[-1] == f"{REJECTED} was pushed but not verified: {how}"
    assert awaiting(pushing) == [REJECTED, None]  # withdrawn here: not the reaper's


def test_a_cancelled_build_stays_cancelled_whatever_becomes_of_its_tag(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def withdraw(*args: Any) -> None:
        raise KeyError("digest")

    monkeypatch.setattr(push, "withdraw", withdraw)
    cancelled = BuildCancelled("b2")
    pushing["verdict"] = cancelled
    said: list[str] = []
    with pytest.raises(BuildCancelled):
        push_run(reason=cancelled, said=said)
    assert said[-1] == f"warning: could not withdraw {REJECTED} from its tag: 'digest'"


def test_a_phase_the_farm_fails_after_its_push_withdraws_the_image(
        pushing: dict[str, Any]) -> None:
    pushing["verdict"] = docker.errors.APIError("the engine went away")
    said: list[str] = []
    with pytest.raises(docker.errors.APIError):
        push_run(said=said)
    assert pushing["unwanted"] == [image_rejection.UNVERIFIED]
    assert said[-1] == f"{REJECTED} was pushed but not verified: the phase stopped (APIError)"


def test_a_phase_that_lost_its_lease_leaves_the_tag_alone(pushing: dict[str, Any]) -> None:
    """Another run of the build holds it now, and may be pushing to the same tag."""
    lost = LeaseLost()
    pushing["verdict"] = lost
    with pytest.raises(LeaseLost):
        push_run(reason=lost)
    assert pushing["withdrawn"] == []
    # Named still: if the build ended rather than started again, the reaper withdraws it.
    assert awaiting(pushing) == [REJECTED]


def _push_cut_short(monkeypatch: pytest.MonkeyPatch, reason: BaseException) -> None:
    def push_image(*args: Any, **kwargs: Any) -> int:
        raise reason

    monkeypatch.setattr(push, "push_image", push_image)


@pytest.mark.parametrize("tag", [None, PREDECESSOR.digest])
def test_a_phase_stopped_during_its_push_leaves_the_tag_as_it_found_it(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tag: str | None) -> None:
    """The registry moves the tag as the push's last step: a push cut short before it
    left the tag as it was (no tag, or what it held before)."""
    cancelled = BuildCancelled("b2")
    _push_cut_short(monkeypatch, cancelled)
    pushing.update(earlier=PREDECESSOR, tag=tag)
    phases: list[Any] = []
    with pytest.raises(BuildCancelled):
        push_run(reason=cancelled, phases=phases)
    assert pushing["tag_asked"] == 1
    assert pushing["withdrawn"] == []
    assert phases[0].pushed is False  # the build names no image
    assert awaiting(pushing) == [REJECTED, None]


def test_a_push_stopped_after_the_registry_took_it_withdraws_the_unverified_image(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop between the registry taking the manifest and the engine saying the push
    ended: the tag holds the new image, which nothing verified."""
    cancelled = BuildCancelled("b2")
    _push_cut_short(monkeypatch, cancelled)
    pushing.update(earlier=PREDECESSOR, tag="sha256:pushed")
    said: list[str] = []
    phases: list[Any] = []
    with pytest.raises(BuildCancelled) as ended:
        push_run(reason=cancelled, said=said, phases=phases)
    assert ended.value is cancelled
    assert phases[0].pushed is True  # it names the image it pushed, as one stopped later does
    assert pushing["withdrawn"] == [("o-r", REJECTED, PREDECESSOR)]
    assert pushing["unwanted"] == [image_rejection.UNVERIFIED]
    assert said[-1] == f"{REJECTED} was pushed but not verified: the build was cancelled"
    assert awaiting(pushing) == [REJECTED, None]


def test_a_push_stopped_while_the_registry_is_away_says_what_it_could_not_learn(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    timed_out = _timed_out()
    _push_cut_short(monkeypatch, timed_out)
    pushing["tag"] = requests.ConnectionError("refused")
    said: list[str] = []
    with pytest.raises(BuildTimedOut):
        push_run(reason=timed_out, said=said)
    assert pushing["withdrawn"] == []
    assert said[-1] == (f"warning: could not learn whether {REJECTED} reached the registry "
                        "before the push stopped: refused")
    # Named still: once the build has ended, the reaper asks the registry again.
    assert awaiting(pushing) == [REJECTED]


def test_a_push_that_lost_its_lease_leaves_the_tag_alone(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another run of the build holds it now, and may be the one that moved the tag."""
    lost = LeaseLost()
    _push_cut_short(monkeypatch, lost)
    pushing["tag"] = "sha256:pushed"
    with pytest.raises(LeaseLost):
        push_run(reason=lost)
    assert pushing["tag_asked"] == 0 and pushing["withdrawn"] == []
    assert awaiting(pushing) == [REJECTED]


def test_without_verification_a_push_cut_short_asks_nothing(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled = BuildCancelled("b2")
    _push_cut_short(monkeypatch, cancelled)
    pushing["tag"] = "sha256:pushed"
    guard = SimpleNamespace(on_abort=lambda hook: hook, raise_if_stopped=lambda: None,
                            reason=cancelled)
    phase = SimpleNamespace(image=REJECTED, record={"name": "o-r"},
                            config=CONFIG.replace(verify=False), guard=guard,
                            say=[].append, build_id="b2", attempt=1)
    with pytest.raises(BuildCancelled):
        push.run(phase)  # type: ignore[arg-type]
    assert pushing["tag_asked"] == 0 and pushing["withdrawn"] == []
    assert awaiting(pushing) == []


class _Died(BaseException):
    """The worker process dies (SIGKILL): nothing after it runs."""


@pytest.mark.parametrize("first_end", [WorkerStopping(), _Died()])
def test_a_push_run_again_after_its_push_restores_what_the_tag_held_first(
        pushing: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        first_end: BaseException) -> None:
    """A phase handed back (or whose worker died) after its push runs again from a
    record re-read from the store: its verification failing then gives the tag back
    the image it held before the first push, not the first run's image."""
    registry = {REJECTED: "sha256:predecessor"}
    store: dict[str, Any] = {"name": "o-r"}

    def push_image(*args: Any, **kwargs: Any) -> int:
        registry[REJECTED] = "sha256:rebuilt"
        return 2048

    def predecessor(config: Any, name: str, image: str, say: Any) -> Any:
        pushing["asked"] += 1
        digest = registry.get(image)
        return image_rejection.Predecessor(digest, "completed build b1") if digest else None

    def withdraw(config: Any, name: str, image: str, say: Any, earlier: Any,
                 unwanted: image_rejection.Unwanted = image_rejection.REJECTED) -> None:
        pushing["withdrawn"].append((name, image, earlier))
        registry[image] = earlier.digest

    def set_running(build_id: str, attempt: int, changes: dict[str, Any]) -> None:
        store.update(changes)

    monkeypatch.setattr(push, "push_image", push_image)
    monkeypatch.setattr(push, "predecessor", predecessor)
    monkeypatch.setattr(push, "withdraw", withdraw)
    monkeypatch.setattr(push.build_store, "set_running", set_running)

    pushing["verdict"] = first_end
    with pytest.raises(type(first_end)):
        push_run(dict(store), reason=first_end if isinstance(first_end, Exception) else None)
    held_after_first = registry[REJECTED]
    assert held_after_first == ("sha256:predecessor" if isinstance(first_end, WorkerStopping)
                                else "sha256:rebuilt")
    # A dead process's image awaits a verdict still (the reaper's, should the build end).
    assert store["unverified_image"] == (None if isinstance(first_end, WorkerStopping)
                                         else REJECTED)

    pushing["verdict"] = BuildFailure("The image exited.")
    with pytest.raises(PhaseFailure):
        push_run(dict(store))  # the next worker's run, from the stored record
    assert pushing["asked"] == 1  # the run again does not ask the registry
    assert pushing["withdrawn"][-1] == ("o-r", REJECTED, PREDECESSOR)
    assert registry[REJECTED] == "sha256:predecessor"


def test_a_phase_failure_pickles_with_its_changes() -> None:
    failure = PhaseFailure("no", ["retry"], {"rejected_image": REJECTED})
    copy = pickle.loads(pickle.dumps(failure))
    assert isinstance(copy, BuildFailure)
    assert (copy.message, copy.suggestions, copy.changes) == (
        "no", ["retry"], {"rejected_image": REJECTED})
