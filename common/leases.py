"""What happens to a running build nobody holds: it is ended, started again, or
its next phase is sent for the worker that died before sending it.

A running build's ``lease`` says who runs it: the worker process that took
its current phase (``worker``), the host it runs on (``host``), the attempt
and when it was taken (``since``). Between phases ``worker`` is empty and
``handed_at`` says since when: any worker of that host may take the next
phase (``resent_at`` says when the farm sent it, the worker that ended the
phase before having died first). A phase a stopping worker handed back has
``worker`` empty and ``released`` naming that phase, which waits to be taken
again. Taking,
handing on and handing back a lease are in ``build_store``
(``start_phase``, ``end_phase``, ``release_phase``); whether the lease's
worker still holds the build is in ``worker_store``. The writes here
apply only if the lease is still the one the caller looked at, so a worker
that took the build meanwhile wins; once one applied, the build's log says
so (the end line a worker writes, that the build starts again, or that its
next phase was sent), since no worker is there to write it.
"""

from __future__ import annotations

import logging
from typing import Any

from common import db, log_store, worker_store
from common.build_store import LOG_END, ended_image, get_build
from common.clock import utcnow
from common.config import Config
from common.db import translate_errors
from common.errors import BadDatabase, NoDatabase
from common.models import BuildRecord, FailureCause, Phase, Status

log = logging.getLogger(__name__)


def _unchanged(record: BuildRecord) -> dict[str, Any]:
    """A filter matching ``record``'s attempt only while its lease is the same."""
    selector: dict[str, Any] = {"build_id": record["build_id"], "attempt": record["attempt"],
                                "status": Status.RUNNING.value}
    lease = record.get("lease")
    if lease:
        selector.update({"lease.since": lease["since"], "lease.worker": lease.get("worker")})
    else:
        selector["lease"] = None
    return selector


def _tell_log(record: BuildRecord, line: str, config: Config) -> None:
    """Add ``line`` to the build's log. The record already says what happened: a
    store that fails now loses only the line, not the restart or the end."""
    try:
        log_store.append_line(record["build_id"], line, config)
    except (NoDatabase, BadDatabase) as exc:
        log.warning("could not add to the log of %s: %s (%s)", record["name"], line, exc)


def end_unheld(record: BuildRecord, status: Status, error: str, config: Config,
               cause: FailureCause | None = None) -> BuildRecord | None:
    """End ``record``'s attempt as ``status`` (a failure with its ``cause``), unless a
    worker took it meanwhile; the log ends with the end line a worker would have written.
    An attempt ended before its push names no image (``build_store.ended_image``)."""
    assert cause is None or status is Status.FAILED, "only a failure has a cause"
    fields: dict[str, Any] = {"status": status.value, "end_time": utcnow(), "lease": None,
                              "error": error, **ended_image(record, status)}
    if cause is not None:
        fields["cause"] = cause.value
    phase = record.get("phase")
    if phase not in (Phase.QUEUED.value, None) and "end" not in record["phases"].get(phase, {}):
        fields[f"phases.{phase}.end"] = fields["end_time"]
    with translate_errors():
        ended = db.update_and_read(db.builds(), _unchanged(record), {"$set": fields},
                                   {"build_id": record["build_id"]})
    # After the record, not before: a line written first could end the log of a build
    # a worker took meanwhile. A follower reads lines trailing the status a while.
    if ended is not None:
        _tell_log(ended, log_store.end_line(status.value, error), config)
    return ended


def note_sent_again(record: BuildRecord, step: str, epoch: str | None, reason: str,
                    config: Config) -> BuildRecord | None:
    """Note that the farm sent ``record``'s next step, ``step``, to the broker of
    ``epoch`` (``reason``: its worker died before it did), so it is not sent again;
    ``None`` when a worker took it meanwhile."""
    fields: dict[str, Any] = {"lease.resent_at": utcnow()}
    if epoch is not None:
        fields["broker_epoch"] = epoch
    with translate_errors():
        # The line below follows the log's end the phase before left: the next phase
        # asks the log's stores for it.
        noted = db.update_and_read(db.builds(), _unchanged(record),
                                   {"$set": fields, "$unset": {LOG_END: ""}},
                                   {"build_id": record["build_id"]})
    if noted is not None:
        _tell_log(noted, log_store.sent_again_line(step, reason), config)
    return noted


def cancel(name: str, config: Config) -> BuildRecord:
    """Cancel the build ``name``: it ends ``cancelled`` (an ended build is returned as
    it is). Raises ``NoBuildInfo`` when unknown.

    The flag is set first, so a worker that takes the build from now on ends
    it. A build nobody holds (queued, between phases, or left by a worker
    that is quiet, stopped or let it go) is then ended at once; a held one
    is ended by its worker, which sees the flag at its next heartbeat and
    stops the Docker build (or by the reaper, if that worker goes quiet).
    """
    record = get_build(name)
    if record["status"] != Status.RUNNING.value:
        return record
    with translate_errors():
        flagged = db.update_and_read(
            db.builds(), {"build_id": record["build_id"], "status": Status.RUNNING.value},
            {"$set": {"cancel_requested": True}}, {"build_id": record["build_id"]})
    if flagged is None:
        return get_build(name)
    lease = flagged.get("lease") or {}
    name_of_worker = lease.get("worker")
    worker = worker_store.find(name_of_worker) if name_of_worker else None
    workers = {worker["worker"]: worker} if worker else {}
    if worker_store.holder(flagged, workers, worker_store.quiet_window(config)) \
            is worker_store.Holder.HELD:
        return flagged
    queued = flagged["phase"] == Phase.QUEUED.value
    ended = end_unheld(flagged, Status.CANCELLED,
                       "Cancelled before it started." if queued else "Cancelled by request.",
                       config)
    return ended or get_build(name)


def restart(record: BuildRecord, reason: str, config: Config) -> BuildRecord | None:
    """Start ``record``'s build again from fetch as the next attempt, since the
    worker that ran it is lost or let it go (``reason`` says which); after
    ``BINDER_MAX_ATTEMPTS`` attempts, fail it saying so.

    A build whose cancel was requested is not started again: it ends
    cancelled (its next attempt's fetch would only end it).

    Returns the restarted record (the caller sends its first phase), or
    ``None`` when the build ended or the lease changed meanwhile. Only if
    its heartbeat did not move either: a build that is still beating is not lost.
    """
    if record.get("cancel_requested"):
        end_unheld(record, Status.CANCELLED, "Cancelled by request.", config)
        return None
    attempt = record["attempt"]
    lease = record.get("lease") or {}
    where = lease.get("worker") or lease.get("host") or "an unknown worker"
    if attempt >= config.max_attempts:
        end_unheld(record, Status.FAILED,
                   f"The build was lost {attempt} times ({reason}; last on {where}). "
                   "Retry it; operators should check the workers.", config, FailureCause.FARM)
        return None
    lost = {"worker": lease.get("worker"), "host": lease.get("host"), "reason": reason,
            "at": utcnow()}
    with translate_errors():
        restarted = db.update_and_read(
            db.builds(), {**_unchanged(record), "heartbeat": record.get("heartbeat")},
            {"$set": {"attempt": attempt + 1, "phase": Phase.QUEUED.value, "lease": None,
                      "heartbeat": None, "enqueued": False, f"lost.{attempt}": lost}},
            {"build_id": record["build_id"]})
    if restarted is not None:
        _tell_log(restarted, log_store.restart_line(reason, restarted["attempt"]), config)
    return restarted


#: Why the farm started builds again, as ``restart_label`` names it: a small fixed
#: set, for a metric's label (the reasons themselves name workers and hosts).
RESTART_LABELS = {
    "worker_silent": "its worker process was not heard from for BINDER_HEARTBEAT_STALE "
                     "(killed, or its host lost)",
    "worker_stopped": "its worker process stopped without handing its phase back",
    "worker_let_go": "its worker process, alive, gave it back (a service it needed did "
                     "not come back within BINDER_SERVICE_WAIT)",
    "heartbeat_stopped": "its worker held it but the build's heartbeat stopped for "
                         "BINDER_HEARTBEAT_STALE + BINDER_BUILD_TIMEOUT",
    "host_lost": "between phases, no worker of its host was alive",
    "broker_lost": "its next phase went with a restarted broker, or could not be sent",
    "next_phase_late": "its next phase did not start within BINDER_HEARTBEAT_STALE + "
                       "BINDER_BUILD_TIMEOUT",
    "store_refused": "the build database kept answering the claim of one of its "
                     "phases with an error",
    "other": "any other reason (as an earlier version may have written it)",
}

#: The reasons the reaper (``workers/reaper.py`` ``verdict``) and a worker that could
#: not send a build's next phase, or claim a phase (``workers/phase_runner.py``), write,
#: by how each begins or ends, and their label.
_WORKER_GONE = {worker_store.Holder.SILENT: "worker_silent",
                worker_store.Holder.STOPPED: "worker_stopped",
                worker_store.Holder.LET_GO: "worker_let_go"}
_BEGINNINGS = {"no worker of host ": "host_lost",
               "the broker restarted": "broker_lost",
               "its next phase could not be sent": "broker_lost",
               "its next phase did not start": "next_phase_late",
               "the build database answered the claim": "store_refused"}


def restart_label(reason: object) -> str:
    """The label in ``RESTART_LABELS`` of a restart's ``reason`` (the ``reason`` of an
    entry of a record's ``lost``), ``other`` for a reason no version here writes."""
    text = str(reason or "")
    if " holds it but has not worked on it " in text:
        return "heartbeat_stopped"
    if text.startswith("its worker "):
        for held, label in _WORKER_GONE.items():
            if text.endswith(f" {held.value}"):
                return label
    return next((label for beginning, label in _BEGINNINGS.items()
                 if text.startswith(beginning)), "other")
