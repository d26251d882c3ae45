"""An image left awaiting a verdict by a build that ended leaves the registry.

The push phase says in the record which image awaits verification's verdict
before it pushes (``unverified_image``, ``workers/phases/push.py``), and clears
it once verification said yes or no, once it withdrew the image itself, or once
its push failed. A worker process killed in between (SIGKILL, out of memory,
its host lost) leaves it set. A build that starts again pushes and verifies
again; one that ends first (cancelled by the API or the reaper while nobody
holds it, failed after ``BINDER_MAX_ATTEMPTS`` lost attempts: see
``common/leases.py``; cancelled by its next worker before the phase ran again)
would keep under its tag an image the farm never verified. The API does not
talk to the registry, so the reaper withdraws it, every pass (``withdraw_left``):

* the records holding the field are found through its index (``common/db.py``):
  only those of builds in their push phase now, or that ended awaiting a verdict;
* a running build is left to its push phase, or its next attempt's (``judge``);
* a completed build's image is the one it completed with: the field is cleared;
* a cancelled or failed build, once its end is a quiet window old (a worker that
  was only quiet, not dead, learns within a heartbeat or two that the build is no
  longer its own and stops its push; a push it finished meanwhile is left to this),
  gets its tag withdrawn as the push phase withdraws the image of a build it stopped
  before verifying (``workers/image_rejection.py``, ``UNVERIFIED``): deleted, or
  given back the image it held when the record kept a ``predecessor``; the build's
  log says so, after its end line;
* then the field is cleared and ``unverified_withdrawn`` says what and when: later
  passes skip the build. While the registry or the build database does not answer,
  the field stays for the next pass and the build's log is left alone (the reaper's
  process log says why); the build has ended already, whatever becomes of its tag.
"""

from __future__ import annotations

import datetime as dt
import logging
from enum import Enum
from typing import Any

import requests

from common import db, log_store
from common.config import Config
from common.db import translate_errors
from common.errors import BadDatabase, NoDatabase
from common.models import BuildRecord, Status
from common.probes import check_registry
from common.worker_store import quiet_window
from workers.image_rejection import UNVERIFIED, Predecessor, withdrawal
from workers.phases.push import AWAITING
from workers.process_logs import bind_build
from workers.registry import manifest_digest

log = logging.getLogger(__name__)

#: What the reaper records once it withdrew a build's image: ``image`` and ``at``.
WITHDRAWN = "unverified_withdrawn"


class Next(Enum):
    """What a pass does with a build whose record names an image awaiting a verdict."""

    WAIT = "wait"  # running, or ended too recently: a later pass looks again
    FORGET = "forget"  # completed: its image is the one it completed with
    WITHDRAW = "withdraw"  # ended without a verdict: the tag goes


def judge(record: BuildRecord, now: dt.datetime, config: Config) -> Next:
    """What to do with ``record``, whose ``unverified_image`` is set, at ``now``."""
    status = record.get("status")
    if status == Status.RUNNING.value:
        return Next.WAIT
    if status == Status.COMPLETED.value:
        return Next.FORGET
    ended = record.get("end_time")
    if ended is not None and (now - ended).total_seconds() < quiet_window(config):
        return Next.WAIT
    return Next.WITHDRAW


def awaiting(config: Config) -> list[BuildRecord]:
    """The records naming an image that awaits a verdict, running builds' too.

    Through the field's index: a cleared field is ``None``, which ``$gt: ""`` (any
    string but the empty one) leaves out, as it leaves out every record without it.
    """
    with translate_errors():
        return list(db.builds(config).find({AWAITING: {"$gt": ""}}))


def withdraw_left(config: Config, now: dt.datetime) -> int:
    """One pass over the records ``awaiting`` finds; returns how many images it
    withdrew (or found nothing to withdraw of). Raises ``NoDatabase`` when the build
    database stops answering; a registry that does not answer (asked once a pass,
    before any build's tag) waits for the next pass."""
    due: list[BuildRecord] = []
    for record in awaiting(config):
        step = judge(record, now, config)
        if step is Next.FORGET:
            with bind_build(record["name"], attempt=record["attempt"]):
                log.info("%s completed: its image %s awaits no verdict", record["name"],
                         record[AWAITING])
                _clear(config, record, {})
        elif step is Next.WITHDRAW:
            due.append(record)
    if not due:
        return 0
    try:
        check_registry(config)
    except (requests.RequestException, RuntimeError) as exc:
        log.warning("the registry does not answer (%s): %s image(s) awaiting a verdict are "
                    "withdrawn at a later pass", exc, len(due))
        return 0
    withdrawn = 0
    for record in due:
        with bind_build(record["name"], attempt=record["attempt"]):
            try:
                withdrawn += settle(config, record, now)
            except NoDatabase:
                raise
            except Exception:  # one build's tag must not keep the others' waiting
                log.exception("could not withdraw %s", record.get(AWAITING))
    return withdrawn


def settle(config: Config, record: BuildRecord, now: dt.datetime) -> bool:
    """Withdraw the image ``record`` names as awaiting a verdict, say in the build's log
    what became of its tag, and clear the field; True once done. False, changing
    nothing, while the registry or the build database does not answer (or the record
    changed since it was read: a new build of the name took it, say)."""
    image = str(record[AWAITING])
    with translate_errors():
        current = db.builds(config).find_one({"build_id": record["build_id"]})
    if current is None or current.get(AWAITING) != image \
            or judge(current, now, config) is not Next.WITHDRAW:
        return False
    earlier = _predecessor(current, image)
    try:
        held = manifest_digest(config, image, timeout=10)
    except requests.RequestException as exc:
        log.warning("the registry does not answer (%s); %s is withdrawn at a later pass",
                    exc, image)
        return False
    lines: list[str] = []
    if held is None and earlier is None:
        lines.append(f"{image} is not in the registry: nothing to withdraw")
    elif earlier is not None and held == earlier.digest:
        lines.append(f"{image} holds the image of {earlier.named_by} as before the push: "
                     "nothing to withdraw")
    else:
        lines.append(f"{image} was pushed but not verified: {how_it_ended(current)}")
        result = withdrawal(config, current["name"], image, lines.append, earlier, UNVERIFIED)
        if not result.settled:
            log.warning("could not withdraw %s yet; a later pass tries again: %s", image,
                        " / ".join(lines[1:]))
            return False
    _clear(config, current, {WITHDRAWN: {"image": image, "at": now}})
    log.info("withdrew %s, left awaiting a verdict by a build that ended %s: %s", image,
             current["status"], " / ".join(lines))
    _tell_log(config, current, lines)
    return True


def how_it_ended(record: BuildRecord) -> str:
    """Why nobody verified the image, as the build's log says it."""
    ending = ("the build was cancelled" if record.get("status") == Status.CANCELLED.value
              else "the build failed")
    return f"{ending} after the worker pushing it was lost"


def _predecessor(record: BuildRecord, image: str) -> Predecessor | None:
    """What the tag of ``image`` held before the build first pushed to it, as the push
    phase kept it (``workers/phases/push.overwritten``)."""
    stored = record.get("predecessor")
    if stored is None or stored.get("image") != image:
        return None
    return Predecessor(stored["digest"], stored["named_by"])


def _clear(config: Config, record: BuildRecord, fields: dict[str, Any]) -> None:
    """The image ``record`` names awaits no verdict any more (unless the record was
    replaced or set again meanwhile)."""
    with translate_errors():
        db.builds(config).update_one({"build_id": record["build_id"], AWAITING: record[AWAITING]},
                                     {"$set": {AWAITING: None, **fields}})


def _tell_log(config: Config, record: BuildRecord, lines: list[str]) -> None:
    """Add ``lines`` to the build's log. The tag and the record say what happened: a
    store that fails now loses only the lines."""
    try:
        writer = log_store.BuildLogWriter(record["build_id"], config)
        try:
            for line in lines:
                writer.write(line)
        finally:
            writer.close()
    except (NoDatabase, BadDatabase) as exc:
        log.warning("could not add to the log of %s: %s (%s)", record["name"],
                    " / ".join(lines), exc)
