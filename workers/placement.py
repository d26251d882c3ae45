"""Which Docker host a build starts on.

A new attempt goes to the host that last built the same name when that host
is free (its engine has the layers), else to the least loaded free host,
through that host's queue; when no host is free it waits in the shared
queue, which only free hosts consume (``workers/host_advert.py``). See
``common/host_store.py`` for what *free* means.

Placement is decided from the store, which may be a moment behind: the
first phase checks again on the host that took it (``reroute``), and sends
a build its host may not take now on to another host.
"""

from __future__ import annotations

import contextlib
import logging
import time

from celery import Celery

from common import build_store, host_store
from common.config import Config
from common.errors import BinderError
from common.host_events import announce
from common.models import STEPS
from workers.queues import SHARED_QUEUE, host_queue, shown_name, task_name

log = logging.getLogger(__name__)

#: A build taken from the shared queue that no host may take now goes back to it;
#: the host that sent it waits this long first, so that it is not its own next
#: taker: long enough for its advert, told at once, to stop its consuming the
#: shared queue. A build taken from the host's own queue goes on at once: the
#: host's next task may be a phase of the build it is running.
BOUNCE_PAUSE = 0.3


def queue_for(config: Config, name: str, built_before: bool = True) -> tuple[str, str | None]:
    """The queue and host (None: any) for a new attempt of ``name``; not
    ``built_before``: the name has no record yet (``host_store.place``)."""
    try:
        host = host_store.place(config, name, built_before=built_before)
    except BinderError as exc:  # the store is away: any host may take it
        log.warning("placing %s without the store: %s", name, exc)
        host = None
    return (host_queue(host), host) if host else (SHARED_QUEUE, None)


def reroute(app: Celery, config: Config, build_id: str, attempt: int,
            taken_from: str | None = None) -> bool:
    """In the first phase, before the build is claimed: True when this host may
    not take the build now and it was sent on to another host (or back to the
    shared queue); False to run it here. ``taken_from``: the queue the task came
    from, when known.

    Whatever goes wrong here (the store or broker away) runs the build here
    rather than risk losing it.
    """
    me = config.worker_host
    try:
        record = host_store.find(me)
        if record is None:
            return False
        # Only builds that run here count: a build sent here that has not started
        # waits in this host's queue, and is sent on when its turn comes if this
        # one has taken its place. Counted, it had this host send a build on and
        # pause while its own queue's message was not even there yet.
        running = host_store.running_builds(me, exclude_build=build_id,
                                            claimed_only=True).get(me, [])
        reason = host_store.refusal(record, len(running), config.heartbeat_stale)
        if reason is None:
            return False
        target = host_store.choose(host_store.all_hosts(), host_store.running_counts(),
                                   config.heartbeat_stale, exclude=me)
    except BinderError as exc:
        log.warning("could not check whether host %s takes %s: %s", me, build_id, exc)
        return False
    queue = host_queue(target) if target else SHARED_QUEUE
    try:
        build = build_store.find_by_id(build_id)
        shown = shown_name(STEPS[0], build["name"]) if build else None
        host_store.note_placement(build_id, attempt, target)  # before sending: see there
        app.send_task(task_name(STEPS[0]), args=(build_id, attempt), queue=queue, shadow=shown)
    except Exception as exc:
        log.warning("could not send %s on (%s); running it here", build_id, exc)
        with contextlib.suppress(BinderError):
            host_store.note_placement(build_id, attempt, me)
        return False
    log.info("%s: sent %s on to %s", reason, build_id, queue)
    announce(config)  # its advert thought this host free, and the build is no longer here
    if target is None and taken_from in (SHARED_QUEUE, None):
        time.sleep(BOUNCE_PAUSE)
    return True
