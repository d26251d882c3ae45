"""Statuses and phases, shared by the API, the workers and stored records."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    QUEUED = "queued"
    FETCHING = "fetching"
    DETECTING = "detecting"
    BUILDING = "building"
    PUSHING = "pushing"
    REGISTERING = "registering"
    FINISHED = "finished"


#: The phase each task sets while it runs, in chain order.
TASK_PHASES: dict[str, Phase] = {
    "fetch": Phase.FETCHING,
    "detect": Phase.DETECTING,
    "build": Phase.BUILDING,
    "push": Phase.PUSHING,
    "template": Phase.REGISTERING,
}

FINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
