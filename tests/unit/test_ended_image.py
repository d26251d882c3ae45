"""What an ended build says of its image: the one it pushed, or, when it ended before
its push, none (``image_name`` None) and the one it planned (``planned_image``), whoever
ends it: its worker, the reaper or a cancel (``leases.end_unheld``), a forced rebuild."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from common import build_store, leases
from common.errors import BuildCancelled, BuildFailure
from common.models import Phase, Status
from tests.support.log_stores import KeptLogs, logs
from tests.unit.test_farm_log_lines import CONFIG, Builds, running
from workers import phase_runner
from workers.outages import OutageWait
from workers.phase_runner import PhaseFailure, PhaseRun
from workers.phases import push

__all__ = ["logs"]  # the fixture, used by name

IMAGE = "reg/o-r:abc"
UNPUSHED = {"image_name": None, "planned_image": IMAGE}
ENDED = (Status.FAILED, Status.CANCELLED)


@pytest.mark.parametrize("status", ENDED)
@pytest.mark.parametrize("phase", ["queued", "fetching", "detecting", "building"])
def test_an_attempt_ended_before_its_push_names_the_image_only_as_planned(
        status: Status, phase: str) -> None:
    record = running(phase=phase, image_name=IMAGE)
    assert build_store.ended_image(record, status) == UNPUSHED  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ENDED)
@pytest.mark.parametrize("phase", ["pushing", "registering"])
def test_an_attempt_ended_in_or_after_its_push_keeps_its_image(status: Status,
                                                               phase: str) -> None:
    record = running(phase=phase, image_name=IMAGE)
    assert build_store.ended_image(record, status) == {}  # type: ignore[arg-type]


def test_what_the_push_phase_knows_wins_over_the_phase() -> None:
    pushing = running(phase="pushing", image_name=IMAGE)
    assert build_store.ended_image(pushing, Status.FAILED, pushed=False) == UNPUSHED  # type: ignore[arg-type]
    assert build_store.ended_image(pushing, Status.CANCELLED, pushed=True) == {}  # type: ignore[arg-type]


def test_a_completed_build_and_one_that_named_no_image_yet_change_nothing() -> None:
    assert build_store.ended_image(running(phase="building", image_name=IMAGE),  # type: ignore[arg-type]
                                   Status.COMPLETED) == {}
    assert build_store.ended_image(running(phase="fetching", image_name=None),  # type: ignore[arg-type]
                                   Status.FAILED) == {}


# The worker that ends the build (workers/phase_runner.py)


@pytest.fixture
def end_in(monkeypatch: pytest.MonkeyPatch, logs: KeptLogs) -> Callable[..., dict[str, Any]]:
    """Run a phase function as the build's phase: the changes ``build_store.finish`` is
    asked to end the build with."""
    calls: list[dict[str, Any]] = []

    def finish(build_id: str, attempt: int, status: Status, error: str | None = None,
               changes: dict[str, Any] | None = None, *args: Any) -> None:
        calls.append({"status": status, **(changes or {})})
    monkeypatch.setattr(build_store, "finish", finish)

    def run(phase: Phase, function: Callable[[PhaseRun], None],
            **fields: Any) -> dict[str, Any]:
        record = running(phase=phase.value, image_name=IMAGE, **fields)
        outcome = phase_runner._run_claimed(CONFIG, record, phase,  # type: ignore[arg-type]
                                            function, OutageWait(CONFIG))
        assert outcome is phase_runner.Outcome.DONE
        return calls.pop()
    return run


EndIn = Callable[..., dict[str, Any]]


def failing(exc: BaseException, pushed: bool | None = None) -> Callable[[PhaseRun], None]:
    def phase(run: PhaseRun) -> None:
        run.pushed = pushed
        raise exc
    return phase


def image_fields(changes: dict[str, Any]) -> dict[str, Any]:
    return {key: changes[key] for key in ("image_name", "planned_image", "rejected_image")
            if key in changes}


@pytest.mark.parametrize("exc", [BuildFailure("RUN make failed."), BuildCancelled("b1"),
                                 KeyError("image-id")])
def test_a_build_ended_in_its_build_phase_names_no_image(end_in: EndIn,
                                                         exc: BaseException) -> None:
    assert image_fields(end_in(Phase.BUILDING, failing(exc))) == UNPUSHED


@pytest.mark.parametrize("exc", [BuildFailure("The registry refused the image."),
                                 BuildCancelled("b1")])
def test_a_push_phase_that_ended_before_its_push_landed_names_no_image(
        end_in: EndIn, exc: BaseException) -> None:
    assert image_fields(end_in(Phase.PUSHING, failing(exc, pushed=False))) == UNPUSHED


def test_a_push_phase_stopped_after_its_push_keeps_its_image(end_in: EndIn) -> None:
    assert image_fields(end_in(Phase.PUSHING, failing(BuildCancelled("b1"), pushed=True))) == {}


def test_an_image_rejected_by_verification_stays_named_rejected(end_in: EndIn) -> None:
    rejected = PhaseFailure("The image exited.", changes={"image_name": None,
                                                          "rejected_image": IMAGE})
    assert image_fields(end_in(Phase.PUSHING, failing(rejected, pushed=True))) == {
        "image_name": None, "rejected_image": IMAGE}


def test_a_failed_template_phase_keeps_the_pushed_image(end_in: EndIn) -> None:
    assert image_fields(end_in(Phase.REGISTERING, failing(BuildFailure("no")))) == {}


@pytest.mark.parametrize(("phase", "expected"), [(Phase.PUSHING, UNPUSHED),
                                                 (Phase.REGISTERING, {})])
def test_a_build_cancelled_as_a_phase_is_claimed_pushed_only_if_an_earlier_phase_did(
        end_in: EndIn, phase: Phase, expected: dict[str, Any]) -> None:
    def never(run: PhaseRun) -> None:
        raise AssertionError("a cancelled build's phase does not run")
    assert image_fields(end_in(phase, never, cancel_requested=True)) == expected


# The push phase says when its push landed (workers/phases/push.py)


def push_phase(monkeypatch: pytest.MonkeyPatch,
               push_image: Callable[..., int]) -> SimpleNamespace:
    monkeypatch.setattr(push, "push_image", push_image)
    monkeypatch.setattr(push, "docker_client", lambda *args, **kwargs: SimpleNamespace(
        close=lambda: None))
    monkeypatch.setattr(push, "watching", lambda *args: _Nothing())
    guard = SimpleNamespace(on_abort=lambda hook: hook, raise_if_stopped=lambda: None,
                            reason=None)
    return SimpleNamespace(image=IMAGE, record={"name": "o-r"},
                           config=CONFIG.replace(verify=False), guard=guard,
                           say=lambda line: None, build_id="b1", attempt=1, pushed=None)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_push_phase_says_its_push_landed_only_once_the_registry_took_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> int:
        raise BuildFailure("The registry refused the image: denied")
    phase = push_phase(monkeypatch, refused)
    with pytest.raises(BuildFailure):
        push.run(phase)  # type: ignore[arg-type]
    assert phase.pushed is False

    phase = push_phase(monkeypatch, lambda *args, **kwargs: 2048)
    assert push.run(phase).changes["pushed_bytes"] == 2048  # type: ignore[arg-type]
    assert phase.pushed is True


# Whoever else ends an attempt: the reaper or a cancel, a forced rebuild


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    store = Builds(running(image_name=IMAGE))
    monkeypatch.setattr(build_store.db, "builds", lambda config=None: store)
    return store


@pytest.mark.parametrize(("phase", "expected"), [
    ("building", UNPUSHED),
    # handed on after its push: the push landed
    ("pushing", {"image_name": IMAGE}),
])
def test_a_build_nobody_holds_ended_by_the_farm_names_what_it_pushed(
        logs: KeptLogs, builds: Builds, phase: str, expected: dict[str, Any]) -> None:
    builds.doc["phase"] = phase
    ended = leases.end_unheld(running(phase=phase, image_name=IMAGE),  # type: ignore[arg-type]
                              Status.CANCELLED, "Cancelled by request.", CONFIG)
    assert ended is not None and ended["status"] == "cancelled"
    assert {key: ended.get(key) for key in expected} == expected
    assert ("planned_image" in ended) == ("planned_image" in expected)


class Attempts:
    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def replace_one(self, selector: dict[str, Any], doc: dict[str, Any],
                    upsert: bool = False) -> None:
        self.docs.append(doc)


@pytest.mark.parametrize(("phase", "expected"), [("building", UNPUSHED),
                                                 ("pushing", {"image_name": IMAGE})])
def test_a_running_build_replaced_by_a_forced_rebuild_names_what_it_pushed(
        monkeypatch: pytest.MonkeyPatch, phase: str, expected: dict[str, Any]) -> None:
    attempts = Attempts()
    monkeypatch.setattr(build_store.db, "attempts", lambda config=None: attempts)
    build_store.archive(running(phase=phase, image_name=IMAGE),  # type: ignore[arg-type]
                        cancelled=True)
    [archived] = attempts.docs
    assert archived["status"] == "cancelled"
    assert image_fields(archived) == expected


def test_a_finished_build_archived_for_a_rebuild_keeps_its_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = Attempts()
    monkeypatch.setattr(build_store.db, "attempts", lambda config=None: attempts)
    build_store.archive(running(phase="finished", status="completed",  # type: ignore[arg-type]
                                image_name=IMAGE))
    assert image_fields(attempts.docs[0]) == {"image_name": IMAGE}
