"""A worker's patience with a service that stops answering in the middle of a build.

A phase does not drop its build because MongoDB, the broker, its Docker
engine or the registry went away for a while (restarted, failed over,
frozen): it keeps its lease, waits, trying again every second, and carries
on once the service answers. MongoDB failures show as ``NoDatabase``
(every operation gives up after ``BINDER_MONGO_TIMEOUT_MS``); a phase that
failed because its engine or the registry went away raises ``ServiceLost``,
and runs again once the service is back. The wait is bounded by
``BINDER_SERVICE_WAIT`` per outage; past it the phase gives the build back
(``OutageTooLong``) and the reaper restarts it. The write that ends a build
waits on past the bound (``phase_runner._end``): the build ended, and given
back it would be built again. So does a phase's claim while the broker is away
too (``phase_runner.claim``): its task's retry could not be sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import docker.errors
import requests
import urllib3.exceptions

from common.config import Config
from common.db import ping
from common.docker_connection import EngineChanged
from common.errors import BuildFailure, EngineFault, NoDatabase
from common.probes import check_docker, check_registry
from workers.guard import BuildTimedOut, PhaseGuard

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between tries while a service does not answer.
RETRY_SECONDS = 1.0


class ServiceLost(Exception):
    """A phase failed because ``service`` stopped answering; ``probe`` raises until it is back."""

    def __init__(self, service: str, probe: Callable[[], None]) -> None:
        super().__init__(service)
        self.service = service
        self.probe = probe


class OutageTooLong(Exception):
    """A service stayed unreachable for longer than ``BINDER_SERVICE_WAIT``."""


def engine_lost(config: Config) -> ServiceLost | None:
    """``ServiceLost`` if this worker's Docker engine does not answer now."""
    return _lost("the Docker engine", lambda: check_docker(config))


def registry_lost(config: Config) -> ServiceLost | None:
    """``ServiceLost`` if the registry does not answer now."""
    return _lost("the registry", lambda: check_registry(config))


@contextlib.contextmanager
def watching(config: Config, guard: PhaseGuard,
             *checks: Callable[[Config], ServiceLost | None]) -> Iterator[None]:
    """Inside, a failure while one of ``checks`` finds its service gone is
    ``ServiceLost`` (the phase runs again once it is back), not the build's fault.
    A deadline reached while one is gone (it hung the phase, frozen) is
    ``OutageTooLong``: the build is given back, not failed as timed out."""
    try:
        yield
    except (BuildFailure, docker.errors.DockerException, requests.RequestException,
            urllib3.exceptions.HTTPError, ConnectionError) as exc:
        # A stream cut short (the engine died mid-push) surfaces as urllib3's
        # ProtocolError, not wrapped by docker-py.
        timed_out = isinstance(guard.reason, BuildTimedOut)
        if guard.reason is not None and not timed_out:  # stopped on purpose: cancelled
            raise
        if isinstance(exc, EngineChanged | EngineFault) and not timed_out:
            # Another engine answers at the address now, or the engine failed the
            # build of its own accord: the phase runs again (on it), as after an engine
            # that went away and came back.
            raise ServiceLost("the Docker engine", lambda: check_docker(config)) from exc
        for check in checks:
            lost = check(config)
            if lost is None:
                continue
            if timed_out:
                # A frozen service hung the phase until the build's deadline: the
                # farm's fault, not the repository's time. No time is left to run the
                # phase again, so the build is given back and starts again.
                raise OutageTooLong(
                    f"{lost.service} did not answer until the build's deadline "
                    f"({guard.timeout_minutes:g} min)") from exc
            raise lost from exc
        raise


def _lost(service: str, probe: Callable[[], None]) -> ServiceLost | None:
    try:
        probe()
    except Exception:
        return ServiceLost(service, probe)
    return None


def _never() -> bool:
    return False


class OutageWait:
    """Waits for services on behalf of one phase (``BINDER_SERVICE_WAIT`` per outage),
    or at once gives up once ``give_up_when()`` is true (this process is stopping)."""

    def __init__(self, config: Config, give_up_when: Callable[[], bool] = _never) -> None:
        self.config = config
        self._give_up_when = give_up_when
        self._deadline: float | None = None
        self._gave_up = False  # once it gave up, the phase waits no more

    def call(self, action: Callable[[], T], doing: str,
             longer_while: Callable[[], bool] = _never) -> T:
        """``action()``, tried again while MongoDB is unreachable, until the bound;
        past it, for another bound each time, while ``longer_while()`` holds."""
        while True:
            try:
                result = action()
            except NoDatabase:
                self._pause("the database", doing, longer_while)
                continue
            self._deadline = None
            return result

    def until_back(self, lost: ServiceLost | None, doing: str) -> None:
        """Return once ``lost``'s service (MongoDB when ``None``) answers again."""
        if lost is None:
            self.call(lambda: ping(self.config), doing)
            return
        while True:
            try:
                lost.probe()
            except Exception:
                self._pause(lost.service, doing)
                continue
            self._deadline = None
            return

    def _pause(self, service: str, doing: str,
               longer_while: Callable[[], bool] = _never) -> None:
        now = time.monotonic()
        if self._gave_up or self._give_up_when():
            self._gave_up = True
            raise OutageTooLong(f"{service} does not answer while {doing}")
        if self._deadline is None:
            self._deadline = now + self.config.service_wait
            log.warning("%s does not answer while %s; waiting up to %s s",
                        service, doing, self.config.service_wait)
        if now >= self._deadline:
            if not longer_while():
                self._gave_up = True
                raise OutageTooLong(f"{service} did not answer for "
                                    f"{self.config.service_wait} s while {doing}")
            log.warning("%s still does not answer while %s; waiting another %s s",
                        service, doing, self.config.service_wait)
            self._deadline = now + self.config.service_wait
        time.sleep(min(RETRY_SECONDS, self._deadline - now))
