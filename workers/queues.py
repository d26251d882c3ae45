"""Queue and task names: builds start on the shared queue, the rest runs on the
fetching host's."""

from __future__ import annotations

from common.models import Step

#: The queue every worker consumes: builds start there (phase fetch).
SHARED_QUEUE = "builds"


def host_queue(host: str) -> str:
    """The queue only the workers of Docker host ``host`` consume."""
    return f"host.{host}"


def task_name(step: Step) -> str:
    """The Celery task that runs ``step``."""
    return f"binder.{step.name}"
