"""Queue and task names: builds start on the shared queue, the rest runs on the
fetching host's."""

from __future__ import annotations

import re

from common.errors import ConfigError
from common.models import Step

#: The queue every worker consumes: builds start there (phase fetch).
SHARED_QUEUE = "builds"
#: What a Docker host's id may be: a hostname's characters. It names the host's queue
#: (``host.ID``, in the comma-separated list a worker consumes), its Celery node
#: (``ID@machine``) and its API path (``/hosts/ID/drain``).
HOST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def check_host_id(host: str) -> str:
    """``host``, or ``ConfigError`` when it cannot be a Docker host's id (``HOST_ID_RE``)."""
    if not HOST_ID_RE.match(host):
        raise ConfigError(f"The host id {host!r} cannot name a Docker host's queue, its "
                          "worker's node and its API path.",
                          suggestions=["Use letters, digits, '.', '-' and '_', as a hostname "
                                       "does (--host-id or BINDER_WORKER_ID)."])
    return host


def host_queue(host: str) -> str:
    """The queue only the workers of Docker host ``host`` consume."""
    return f"host.{host}"


def task_name(step: Step) -> str:
    """The Celery task that runs ``step``."""
    return f"binder.{step.name}"


def shown_name(step: Step, build_name: str) -> str:
    """How a step's task of build ``build_name`` shows in Flower, events and worker logs
    (Celery's ``shadow``): ``binder.fetch:owner-repo``; the task run is ``task_name``."""
    return f"{task_name(step)}:{build_name}"


def build_name_shown(shown: str | None) -> str:
    """The build name in a ``shown_name`` (empty for a task sent without one)."""
    return (shown or "").partition(":")[2]
