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


def shown_name(step: Step, build_name: str) -> str:
    """How a step's task of build ``build_name`` shows in Flower, events and worker logs
    (Celery's ``shadow``): ``binder.fetch:owner-repo``; the task run is ``task_name``."""
    return f"{task_name(step)}:{build_name}"


def build_name_shown(shown: str | None) -> str:
    """The build name in a ``shown_name`` (empty for a task sent without one)."""
    return (shown or "").partition(":")[2]
