"""The build chain as Celery tasks, one per step of ``common.models.STEPS``.

Every task takes the build id and attempt, re-reads the record and is
idempotent (see ``workers/phase_runner.py``). The first step runs on the
shared queue; when it is done it hands the rest of the chain on, each
``same_host`` step to its own host's queue, where the checkout and the
image are.

Adding a step: its module ``workers/phases/<name>.py`` with ``run``, and its
entry in ``STEPS`` (``common/models.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Task, chain, shared_task
from celery.canvas import Signature

from common.config import Config
from common.errors import NoDatabase
from common.models import STEPS, Step
from workers.celery_app import task_config
from workers.phase_runner import Outcome, PhaseFunction, run_phase
from workers.queues import SHARED_QUEUE, build_name_shown, host_queue, shown_name, task_name

#: A task that cannot reach MongoDB to claim its build waits and tries again
#: rather than dropping the message (MongoDB is the truth; it will be back).
RETRY_WHILE_NO_DATABASE: dict[str, Any] = {
    "autoretry_for": (NoDatabase,), "retry_backoff": 2, "retry_backoff_max": 60,
    "max_retries": None, "retry_jitter": True,
}


def step_function(step: Step) -> PhaseFunction:
    function: PhaseFunction = importlib.import_module(f"workers.phases.{step.name}").run
    return function


def rest_of_chain(config: Config, build_id: str, attempt: int, name: str = "") -> Signature:
    """The steps after the first, each on the queue it must run on (and shown with the
    build's ``name``)."""
    host = host_queue(config.worker_host)
    return chain(*(Signature(task_name(step), args=(build_id, attempt), immutable=True,
                             queue=host if step.same_host else SHARED_QUEUE,
                             shadow=shown_name(step, name) if name else None)
                   for step in STEPS[1:]))


def _make_task(step: Step) -> None:
    function = step_function(step)
    first = step is STEPS[0]

    @shared_task(bind=True, name=task_name(step), **RETRY_WHILE_NO_DATABASE)
    def run_step(self: Task, build_id: str, attempt: int) -> None:
        config = task_config(self)
        outcome = run_phase(config, step, build_id, attempt, function)
        if outcome is not Outcome.CONTINUE:
            self.request.chain = None  # the build ended (or was not ours): stop the chain
        elif first:
            name = build_name_shown(self.request.shadow)
            raise self.replace(rest_of_chain(config, build_id, attempt, name))


for _step in STEPS:
    _make_task(_step)
