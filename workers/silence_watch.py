"""Noticing a service that stopped answering while the stream it feeds is silent.

A Docker build reads its output as a stream from the engine. A frozen engine
sends nothing, but neither does a long quiet ``RUN`` step: silence alone says
nothing, and the build would otherwise learn of a frozen engine only at its
deadline (up to ``BINDER_BUILD_TIMEOUT``). So once the stream has been silent
for ``QUIET_SECONDS``, the phase's guard (``workers/guard.py``) probes the
service at each heartbeat; a service that fails every probe for
``BINDER_SERVICE_WAIT`` is an outage (``OutageTooLong``): the phase stops and
the build is given back, the farm's fault, not the repository's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from workers.outages import OutageTooLong

log = logging.getLogger(__name__)

#: Seconds of silence from the stream before the service is probed: far longer
#: than a busy step's pause between two lines, so an active build costs no probe.
QUIET_SECONDS = 30.0


class SilenceWatch:
    """Watches one stream that ``service`` feeds; ``probe`` raises while it does not answer.

    The stream's reader calls :meth:`heard` on every line; the guard's thread calls
    :meth:`gone_too_long` at each heartbeat. Both only set or read floats, so they
    need no lock.
    """

    def __init__(self, service: str, probe: Callable[[], None], bound: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.bound = bound
        self._probe = probe
        self._clock = clock
        self._heard_at = clock()
        self._down_since: float | None = None

    def heard(self) -> None:
        """The stream spoke: its service answers."""
        self._heard_at = self._clock()
        self._down_since = None

    def gone_too_long(self) -> OutageTooLong | None:
        """``OutageTooLong`` once the stream is silent and the service has failed
        every probe for ``bound`` seconds; ``None`` while it answers, or may."""
        now = self._clock()
        if now - self._heard_at < QUIET_SECONDS:
            return None
        try:
            self._probe()
        except Exception as exc:
            if self._down_since is None:
                self._down_since = now
                log.warning("%s does not answer while the build's output is silent (%s); "
                            "waiting up to %g s", self.service, exc, self.bound)
            if now - self._down_since >= self.bound:
                return OutageTooLong(f"{self.service} did not answer for {self.bound:g} s "
                                     "while the build's output was silent")
            return None
        self._down_since = None
        return None
