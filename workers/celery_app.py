"""The farm's Celery app, made by :func:`create_celery` from the settings.

The API's app factory makes one to send work; the worker, beat and Flower
load ``workers.worker_app``, which makes one from the process's settings
with the task modules included.

Tasks are late-acked with prefetch 1 so a message is only gone once its
phase has finished; the broker's visibility timeout outlasts the longest
allowed build so Redis does not hand a running task to a second worker.
MongoDB stays the truth: the reaper (``workers/reaper.py``) restarts what a
lost message or a dead worker leaves behind.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from celery import Celery, Task
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init

from common.config import Config, get_config
from workers.process_logs import configure_logger, set_host
from workers.queues import SHARED_QUEUE

#: Modules whose tasks a worker runs.
TASK_MODULES = ("workers.pipeline", "workers.reaper", "workers.liveness", "workers.retention",
                "workers.host_advert")

#: Server-side timeout of a worker's BRPOP (see ``polling_interval`` below): a few
#: idle BRPOPs a second per worker.
BRPOP_SECONDS = 0.2


class FarmCelery(Celery):
    """A Celery app that carries the farm's settings for its tasks."""

    farm_config: Config


def create_celery(config: Config, with_tasks: bool = False) -> FarmCelery:
    """A Celery app for ``config``; ``with_tasks`` for processes that run tasks."""
    app = FarmCelery("binder_build", include=list(TASK_MODULES) if with_tasks else [],
                     set_as_current=with_tasks)
    app.farm_config = config
    if with_tasks:
        from workers.host_advert import HostGate

        app.steps["consumer"].add(HostGate)
    app.conf.update(
        broker_url=config.redis_url,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=SHARED_QUEUE,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={
            "visibility_timeout": config.build_timeout + 1800,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
            "retry_on_timeout": True,
            # The server-side timeout of each BRPOP (kombu's default 1 s): the shared
            # queue a host starts or stops consuming joins or leaves the wait only
            # when the BRPOP in flight returns, so an undrained host would idle this long.
            "polling_interval": BRPOP_SECONDS,
            # Queues are asked in the order the worker names them, its own host's
            # first: a process that frees takes its build's next phase before any
            # new build from the shared queue (kombu's default rotates the order).
            "queue_order_strategy": "priority",
            **({"global_keyprefix": config.broker_prefix} if config.broker_prefix else {}),
        },
        worker_send_task_events=True,
        task_send_sent_event=True,
        # The reaper runs in the beat process itself (workers/reaper.py).
        beat_schedule={
            "collect-garbage": {"task": "binder.collect_garbage", "schedule": 600.0},
            "retention": {"task": "binder.retention", "schedule": config.retention_interval},
        },
    )
    return app


def task_config(task: Task) -> Config:
    """The farm settings of the app running ``task``."""
    return cast(FarmCelery, task.app).farm_config


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger: logging.Logger, **_: Any) -> None:
    set_host(get_config().worker_host)
    logging.captureWarnings(True)
    configure_logger(logger)


@worker_init.connect
def _serve_package_index(sender: Any, **_: Any) -> None:
    """In the worker's main process, before its pool forks (``workers/index_proxy.py``)."""
    from workers.index_proxy import start_proxy

    config = cast(FarmCelery, sender.app).farm_config
    start_proxy(config.pip_index_url, config.pip_proxy)
