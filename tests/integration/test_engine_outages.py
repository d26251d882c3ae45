"""A Docker engine that freezes (SIGSTOP: it accepts connections and answers
nothing) until a build's deadline is the farm's fault, not the build's time.

The engine is a dockerd of this module's own, never the shared one; no build
runs on it: the test asks what a phase stopped at its deadline would raise.
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
from tests.support.services import DockerEngine
from workers.guard import BuildTimedOut, PhaseGuard
from workers.outages import OutageTooLong, engine_lost, watching


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
