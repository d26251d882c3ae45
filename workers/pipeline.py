"""The build chain as Celery tasks: fetch -> detect -> build -> push -> template.

Every task takes the build id and attempt, re-reads the record and is
idempotent (see ``workers/phase_runner.py``). fetch runs on the shared queue; it
hands the rest of the chain to its own host's queue, where the checkout
and the image are.
"""

from __future__ import annotations

from typing import Any

from celery import Task, chain

from common.config import get_config
from common.errors import NoDatabase
from workers.celery_app import app
from workers.phase_runner import Outcome, PhaseFunction, run_phase
from workers.phases import build, detect, fetch, push, template
from workers.queues import host_queue

PHASE_FUNCTIONS: dict[str, PhaseFunction] = {
    "fetch": fetch.run,
    "detect": detect.run,
    "build": build.run,
    "push": push.run,
    "template": template.run,
}
HOST_PHASES = ("detect", "build", "push", "template")

#: A task that cannot reach MongoDB to claim its build waits and tries again
#: rather than dropping the message (MongoDB is the truth; it will be back).
RETRY_WHILE_NO_DATABASE: dict[str, Any] = {
    "autoretry_for": (NoDatabase,), "retry_backoff": 2, "retry_backoff_max": 60,
    "max_retries": None, "retry_jitter": True,
}




@app.task(bind=True, name="binder.fetch", **RETRY_WHILE_NO_DATABASE)
def fetch_task(self: Task, build_id: str, attempt: int) -> None:
    outcome = run_phase("fetch", build_id, attempt, PHASE_FUNCTIONS["fetch"])
    if outcome is not Outcome.CONTINUE:
        return
    queue = host_queue(get_config().worker_host)
    rest = chain(*(app.signature(f"binder.{name}", args=(build_id, attempt), immutable=True,
                                 queue=queue) for name in HOST_PHASES))
    raise self.replace(rest)


def _continue(task: Task, name: str, build_id: str, attempt: int) -> None:
    if run_phase(name, build_id, attempt, PHASE_FUNCTIONS[name]) is not Outcome.CONTINUE:
        task.request.chain = None  # the build ended (or was not ours): stop the chain


@app.task(bind=True, name="binder.detect", **RETRY_WHILE_NO_DATABASE)
def detect_task(self: Task, build_id: str, attempt: int) -> None:
    _continue(self, "detect", build_id, attempt)


@app.task(bind=True, name="binder.build", **RETRY_WHILE_NO_DATABASE)
def build_task(self: Task, build_id: str, attempt: int) -> None:
    _continue(self, "build", build_id, attempt)


@app.task(bind=True, name="binder.push", **RETRY_WHILE_NO_DATABASE)
def push_task(self: Task, build_id: str, attempt: int) -> None:
    _continue(self, "push", build_id, attempt)


@app.task(bind=True, name="binder.template", **RETRY_WHILE_NO_DATABASE)
def template_task(self: Task, build_id: str, attempt: int) -> None:
    _continue(self, "template", build_id, attempt)
