"""A worker rides out a service that stops answering: it waits, bounded, then gives up."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3.exceptions

from common.config import load_config
from common.errors import BuildFailure, EngineFault, NoDatabase
from tests.support.outage_clock import Clock, outage_clock
from workers.outages import OutageTooLong, OutageWait, ServiceLost, watching

CONFIG = load_config(environ={}, service_wait=5, redis_url="redis://127.0.0.1:1/0")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return outage_clock(monkeypatch)


def failing(times: int) -> Any:
    calls = {"n": 0}

    def action() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise NoDatabase("down")
        return "done"
    return action


def test_waits_for_the_database_and_carries_on(clock: Clock) -> None:
    assert OutageWait(CONFIG).call(failing(3), "testing") == "done"
    assert clock.now == 103.0


def test_gives_up_after_the_bound(clock: Clock) -> None:
    with pytest.raises(OutageTooLong, match="did not answer for 5 s while testing"):
        OutageWait(CONFIG).call(failing(100), "testing")
    assert clock.now == 105.0


def test_after_giving_up_it_waits_no_more(clock: Clock) -> None:
    wait = OutageWait(CONFIG)
    with pytest.raises(OutageTooLong):
        wait.call(failing(100), "testing")
    with pytest.raises(OutageTooLong):
        wait.call(failing(1), "closing")
    assert clock.now == 105.0


def test_each_outage_gets_the_whole_bound(clock: Clock) -> None:
    wait = OutageWait(CONFIG)
    assert wait.call(failing(4), "first") == "done"
    assert wait.call(failing(4), "second") == "done"  # 8 s of waiting in all


class Guard:
    reason: BaseException | None = None


def gone(config: Any) -> ServiceLost:
    return ServiceLost("the Docker engine", lambda: None)


def there(config: Any) -> None:
    return None


@pytest.mark.parametrize("error", [
    urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead(0 bytes read)"),
    ConnectionRefusedError(111, "Connection refused"),
    BuildFailure("The registry did not answer for the base image"),
])
def test_a_failure_while_a_service_is_gone_is_that_service_lost(error: Exception) -> None:
    with pytest.raises(ServiceLost) as raised, watching(CONFIG, Guard(), there, gone):  # type: ignore[arg-type]
        raise error
    assert raised.value.service == "the Docker engine"
    assert raised.value.__cause__ is error


def test_a_failure_while_every_service_answers_is_the_builds() -> None:
    with pytest.raises(BuildFailure), watching(CONFIG, Guard(), there):  # type: ignore[arg-type]
        raise BuildFailure("bad Dockerfile")


def test_a_phase_stopped_on_purpose_is_not_a_lost_service() -> None:
    guard = Guard()
    guard.reason = TimeoutError("over its timeout")
    with pytest.raises(BuildFailure), watching(CONFIG, guard, gone):  # type: ignore[arg-type]
        raise BuildFailure("stopped")


def test_a_phase_whose_log_cannot_say_the_outage_still_waits_and_runs_again() -> None:
    """The log's own store may be the service that is away: saying so must not end the phase
    as a farm failure (``BuildLogWriter.write`` raises once its queue stayed full)."""
    from types import SimpleNamespace

    from common.models import Phase
    from workers.phase_runner import PhaseResult, _run_function

    waited: list[str] = []
    runs = failing(1)

    def say(line: str) -> None:
        raise NoDatabase("the build's log could not be stored")

    def function(run: Any) -> PhaseResult:
        runs()
        return PhaseResult({"ran": True})

    class Wait:
        def until_back(self, lost: Any, doing: str) -> None:
            waited.append(doing)

    run = SimpleNamespace(state=Phase.BUILDING, say=say, guard=Guard())
    result = _run_function(run, function, Wait())  # type: ignore[arg-type]
    assert result.changes == {"ran": True}
    assert waited == ["running building"]


def test_a_replaced_engine_is_lost_until_the_probe_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that no longer speaks the API version learned from it was replaced: the
    phase runs again on the engine there now, not failed for the repository."""
    from common.docker_connection import EngineChanged
    from workers import outages
    probed: list[Any] = []
    monkeypatch.setattr(outages, "check_docker", probed.append)
    changed = EngineChanged("The Docker engine at unix:///e.sock no longer speaks 1.99.")
    with pytest.raises(ServiceLost) as raised, watching(CONFIG, Guard(), there):  # type: ignore[arg-type]
        raise changed
    assert raised.value.service == "the Docker engine"
    assert raised.value.__cause__ is changed
    raised.value.probe()
    assert probed == [CONFIG]


def test_a_build_the_engine_failed_of_its_own_accord_runs_again() -> None:
    """The engine lost the context it was streamed: not the repository's failure; the
    phase runs again while the engine answers (``_run_function`` bounds how often)."""
    fault = EngineFault('Docker could not build the image: Get "http://build-context-x": '
                        "context not found")
    with pytest.raises(ServiceLost) as raised, watching(CONFIG, Guard()):  # type: ignore[arg-type]
        raise fault
    assert raised.value.service == "the Docker engine" and raised.value.__cause__ is fault
