"""A Docker engine that freezes (SIGSTOP: it accepts connections and answers
nothing) until a build's deadline is the farm's fault, not the build's time.

The engine is a dockerd of this module's own, never the shared one; no build
runs on it: the tests ask what a phase stopped at its deadline would raise, and
what the watch a build keeps on its engine while its output is silent finds.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.clock import utcnow
from common.config import Config, get_config
from common.models import Phase
from common.probes import check_docker
from tests.support.services import DockerEngine
from workers.guard import BuildTimedOut, PhaseGuard
from workers.outages import OutageTooLong, engine_lost, watching
from workers.silence_watch import QUIET_SECONDS, SilenceWatch


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[DockerEngine, Config]]:
    # A short root: the engine's socket path must fit a unix socket address.
    root = Path(tempfile.mkdtemp(prefix="bbe-", dir="/tmp"))
    dockerd = DockerEngine(root).start()
    try:
        yield dockerd, get_config().replace(docker_host=dockerd.url)
    finally:
        dockerd.stop()
        dockerd.remove_files()
        shutil.rmtree(root, ignore_errors=True)


def past_its_deadline() -> PhaseGuard:
    return PhaseGuard("b" * 32, 1, Phase.BUILDING, utcnow() - dt.timedelta(seconds=1), 60, 5)


def test_a_deadline_reached_while_the_engine_is_frozen_gives_the_build_back(
        engine: tuple[DockerEngine, Config]) -> None:
    dockerd, config = engine
    guard = past_its_deadline()
    with dockerd.frozen(), pytest.raises(OutageTooLong, match="the Docker engine did not "
                                         "answer until the build's deadline"), \
            watching(config, guard, engine_lost):
        guard.check()


def test_a_deadline_reached_while_the_engine_answers_is_the_builds_timeout(
        engine: tuple[DockerEngine, Config]) -> None:
    _, config = engine
    guard = past_its_deadline()
    with pytest.raises(BuildTimedOut), watching(config, guard, engine_lost):
        guard.check()


def silent_build_watch(config: Config, clock: list[float],
                       probes: list[float] | None = None) -> SilenceWatch:
    """The watch a build keeps on its engine, its output silent since time 0;
    ``probes`` gets the time of each probe."""
    def probe() -> None:
        if probes is not None:
            probes.append(clock[0])
        check_docker(config)
    return SilenceWatch("the Docker engine", probe, config.service_wait,
                        clock=lambda: clock[0])


def test_an_engine_frozen_under_a_silent_build_is_given_up_after_the_service_wait(
        engine: tuple[DockerEngine, Config]) -> None:
    dockerd, config = engine
    clock = [0.0]
    watch = silent_build_watch(config, clock)
    clock[0] = QUIET_SECONDS
    with dockerd.frozen():
        assert watch.gone_too_long() is None  # the wait starts
        clock[0] += config.service_wait
        reason = watch.gone_too_long()
    assert isinstance(reason, OutageTooLong)
    assert "the Docker engine did not answer" in str(reason)


def test_an_answering_engine_under_a_silent_build_lets_it_go_on(
        engine: tuple[DockerEngine, Config]) -> None:
    _, config = engine
    clock, probes = [0.0], []
    watch = silent_build_watch(config, clock, probes)
    clock[0] = QUIET_SECONDS
    for _ in range(3):
        assert watch.gone_too_long() is None
        clock[0] += config.service_wait
    assert len(probes) == 3  # probed each time, and it answered
