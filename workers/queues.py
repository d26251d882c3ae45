"""Queue names: builds start on the shared queue, the rest runs on the fetching host's."""

from __future__ import annotations

#: The queue every worker consumes: builds start there (phase fetch).
SHARED_QUEUE = "builds"


def host_queue(host: str) -> str:
    """The queue only the workers of Docker host ``host`` consume."""
    return f"host.{host}"
