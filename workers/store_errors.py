"""A phase's patience with a MongoDB that answers its writes with an error.

An error answer (``BadDatabase``) is not an outage (``workers/outages.py``):
MongoDB is there and said no. Some of its refusals last a moment only (a
write conflict with another write of the same record), so a write of a
phase's life (its claim, its end, the build's end) is tried again a few
times, a short pause apart. One still refused after that is the farm's
failure, which the caller turns into the build's restart or end: a
permanent refusal (a lost permission) is never tried again forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from common.errors import BadDatabase

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many times a write of a phase's life is tried while MongoDB refuses it.
ERROR_TRIES = 3
#: Seconds between those tries.
ERROR_PAUSE_SECONDS = 1.0


def retried(action: Callable[[], T], doing: str) -> T:
    """``action()``, tried again while MongoDB answers it with an error, up to
    ``ERROR_TRIES`` times in all; the last refusal's ``BadDatabase`` is raised.
    Anything else ``action`` raises (``NoDatabase`` too: the outage waits are the
    caller's) goes through at once."""
    for count in range(1, ERROR_TRIES + 1):
        try:
            return action()
        except BadDatabase:
            if count == ERROR_TRIES:
                log.error("the build database refused %s %d times; giving up", doing, count)
                raise
            log.warning("the build database answered %s with an error (try %d of %d); "
                        "trying again", doing, count, ERROR_TRIES)
            time.sleep(ERROR_PAUSE_SECONDS)
    raise AssertionError("unreachable")
