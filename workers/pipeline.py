"""The build chain as Celery tasks, one per step of ``common.models.STEPS``.

Every task takes the build id and attempt, re-reads the record and is
idempotent (see ``workers/phase_runner.py``). The first step runs on the
shared queue; each ``same_host`` step after it runs on its own host's queue,
where the checkout and the image are. A step sends the next one itself,
while it still holds the build, so a message that cannot be sent is noticed
(and the build started again) instead of lost with nobody knowing.

Adding a step: its module ``workers/phases/<name>.py`` with ``run``, and its
entry in ``STEPS`` (``common/models.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery, Task, shared_task
from celery.exceptions import Reject

from common.build_store import TaskTry
from common.config import Config
from common.errors import NoDatabase
from common.host_events import announce
from common.models import STEPS, BuildRecord, Step
from workers.celery_app import task_config
from workers.dispatch import enqueue_build, step_queue
from workers.phase_runner import Outcome, PhaseFunction, PhaseResult, PhaseRun, run_phase
from workers.placement import reroute
from workers.queues import shown_name, task_name

#: A task that cannot reach MongoDB to claim its build waits and tries again
#: rather than dropping the message (MongoDB is the truth; it will be back): first
#: in its process, holding the message (``phase_runner.claim``), then as a retry.
RETRY_WHILE_NO_DATABASE: dict[str, Any] = {
    "autoretry_for": (NoDatabase,), "retry_backoff": 2, "retry_backoff_max": 60,
    "max_retries": None, "retry_jitter": True,
}


def step_function(step: Step) -> PhaseFunction:
    function: PhaseFunction = importlib.import_module(f"workers.phases.{step.name}").run
    return function


def send_next(app: Celery, config: Config, step: Step, record: BuildRecord) -> None:
    """Send the step after ``step`` of ``record``'s attempt: on this host's queue
    when it must run where the checkout is, shown with the build's name."""
    following = STEPS[STEPS.index(step) + 1]
    app.send_task(task_name(following), args=(record["build_id"], record["attempt"]),
                  queue=step_queue(following, config.worker_host),
                  shadow=shown_name(following, record["name"]))


def claimed_here(function: PhaseFunction) -> PhaseFunction:
    """``function``, first telling this host's advert that a build now runs here
    (it has just been claimed), so the host stops taking new ones at once."""
    def run(phase: PhaseRun) -> PhaseResult | None:
        announce(phase.config)
        return function(phase)
    return run


def _make_task(step: Step) -> None:
    function = step_function(step)
    if step is STEPS[0]:
        function = claimed_here(function)
    last = step is STEPS[-1]

    @shared_task(bind=True, name=task_name(step), **RETRY_WHILE_NO_DATABASE)
    def run_step(self: Task, build_id: str, attempt: int) -> None:
        config = task_config(self)
        taken_from = (self.request.delivery_info or {}).get("routing_key")
        if not step.same_host and reroute(self.app, config, build_id, attempt, taken_from):
            return  # this host takes no new build now; another one will

        def hand_on(record: BuildRecord) -> None:
            send_next(self.app, config, step, record)

        def restart(record: BuildRecord) -> None:
            enqueue_build(self.app, config, record)

        outcome = run_phase(config, step, build_id, attempt, function,
                            None if last else hand_on, restart,
                            TaskTry(self.request.id, self.request.retries))
        if outcome is Outcome.HANDED_BACK:
            # Back to its queue, for the next worker (or this one, started again).
            raise Reject(f"{step.name} of {build_id} handed back: this worker is stopping",
                         requeue=True)
        if outcome is not Outcome.CONTINUE:
            announce(config)  # the build ended (or left): this host may take another


for _step in STEPS:
    _make_task(_step)
