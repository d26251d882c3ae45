"""What every phase shares: claiming the record, the guard, the log, the ending.

``run_phase`` re-reads the build, takes the lease for this phase (or learns
it has none and does nothing: a duplicate or stale task), runs the phase
function under a ``PhaseGuard`` with the build's log open, stores what the
phase returns, and turns every way a phase can end into the right final
state with a sentence a user can act on.

A phase that takes its worker process down (SIGKILL, out of memory) comes
back: its task is late-acked, so the broker delivers it again, to the same
attempt. Every claim counts a delivery; past ``max_deliveries`` deaths the
build fails instead of running the phase once more, and a cancelled build
ends at its next delivery.

A worker process asked to stop (SIGTERM, see ``workers/stopping.py``) is
not a death: the guard stops its phase as a cancel would, and the phase is
handed back (the lease released for that same phase, counted as a hand-back,
the task's message back to its queue), so the next worker of its host runs
it again from its start.

A write of the phase's life that MongoDB answers with an error (an answer,
not an outage) is tried again a few times (``workers/store_errors.py``); a
claim still refused starts the build again as its next attempt, a phase end
still refused fails it as the farm's fault, a build end gives it back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import redis
from kombu.exceptions import OperationalError

from common import build_store, leases
from common.clock import utcnow
from common.config import Config
from common.errors import BadDatabase, BuildCancelled, BuildFailure, LeaseLost, NoDatabase
from common.log_store import BuildLogWriter, end_line, phase_banner
from common.models import BEFORE_PUSH, STEPS, BuildRecord, FailureCause, Phase, Status, Step
from common.quoting import plain_line
from workers import liveness, stopping
from workers.dispatch import broker_epoch
from workers.guard import PhaseGuard
from workers.outages import OutageTooLong, OutageWait, ServiceLost
from workers.process_logs import bind_build
from workers.repo_yaml import shorten
from workers.stopping import WorkerStopping
from workers.store_errors import ERROR_PAUSE_SECONDS, retried

log = logging.getLogger(__name__)

#: What sending a message raises while the broker is unreachable.
BROKER_ERRORS = (OperationalError, redis.RedisError, OSError)
#: What a line written to a build's log raises when its store fails (away, or
#: refusing it): the line is lost, not the build's run or end.
LOG_LOST = (NoDatabase, BadDatabase)


class Outcome(Enum):
    CONTINUE = "continue"  # hand on to the next phase
    DONE = "done"  # the build ended (completed, failed, cancelled)
    DROPPED = "dropped"  # not ours to run (stale attempt, duplicate)
    HANDED_BACK = "handed back"  # this worker is stopping; the phase runs again elsewhere


@dataclass
class PhaseRun:
    """What a phase function gets."""

    config: Config
    record: BuildRecord
    guard: PhaseGuard
    log: BuildLogWriter
    state: Phase
    #: Whether the attempt's push landed, as the push phase knows it: False from its
    #: start until the registry took the image, then True (None in other phases: the
    #: phase the build is in tells, ``build_store.ended_image``).
    pushed: bool | None = None

    @property
    def build_id(self) -> str:
        return str(self.record["build_id"])

    @property
    def attempt(self) -> int:
        return int(self.record["attempt"])

    @property
    def content_id(self) -> str:
        """The content id (commit SHA, archive digest) this attempt builds; set by fetch."""
        content_id = self.record.get("content_id")
        assert content_id, "fetch sets the content id before any later step runs"
        return content_id

    @property
    def image(self) -> str:
        """The image this attempt builds and pushes; set by fetch."""
        image = self.record.get("image_name")
        assert image, "fetch sets the image name before any later step runs"
        return image

    @property
    def workdir(self) -> Path:
        return work_dir(self.config, self.build_id, self.attempt)

    @property
    def checkout(self) -> Path:
        return self.workdir / "repo"

    def say(self, line: str) -> None:
        self.log.write(line)


@dataclass
class PhaseResult:
    """What a phase function returns: fields to store, and whether the build is done."""

    changes: dict[str, Any] = field(default_factory=dict)
    #: True ends the build ``completed`` (a cache hit, or the last step).
    complete: bool = False


class PhaseFailure(BuildFailure):
    """A failure that also changes fields of the record it ends, as ``PhaseResult``'s
    changes do for a phase that succeeds: both are written in the one write that
    ends the build."""

    def __init__(self, message: str, suggestions: list[str] | None = None,
                 changes: dict[str, Any] | None = None,
                 cause: FailureCause | None = None) -> None:
        super().__init__(message, suggestions, cause)
        self.changes = dict(changes or {})
        self.args = (message, self.suggestions, self.changes)  # pickled with its changes

    @classmethod
    def of(cls, failure: BuildFailure, changes: dict[str, Any]) -> PhaseFailure:
        """``failure`` (its cause too), with ``changes`` to the record."""
        return cls(failure.message, failure.suggestions, changes, failure.cause)


PhaseFunction = Callable[[PhaseRun], PhaseResult | None]
#: Sends the next step of the build (it raises while the broker is unreachable).
HandOn = Callable[[BuildRecord], None]
#: Sends the first step of a restarted build.
Restart = Callable[[BuildRecord], None]


def work_dir_name(build_id: str, attempt: int) -> str:
    """The name of an attempt's work dir under ``config.work_root``."""
    return f"{build_id}-{attempt}"


def work_dir(config: Config, build_id: str, attempt: int) -> Path:
    return config.work_root / work_dir_name(build_id, attempt)


def _deadline(record: BuildRecord, config: Config, phase: Phase) -> tuple[dt.datetime, float]:
    started = record.get("attempt_start") or utcnow()
    minutes = config.build_timeout / 60
    requested = (record.get("binder_yml") or {}).get("timeout")
    if requested:
        minutes = min(minutes, float(requested))
    deadline = started + dt.timedelta(minutes=minutes)
    limits = {Phase.FETCHING: config.clone_timeout, Phase.PUSHING: config.push_timeout}
    if phase in limits:
        phase_deadline = utcnow() + dt.timedelta(seconds=limits[phase])
        if phase_deadline < deadline:
            return phase_deadline, limits[phase] / 60
    return deadline, minutes


def claim(build_id: str, attempt: int, phase: Phase, config: Config,
          task: build_store.TaskTry | None = None) -> BuildRecord:
    """Take the lease for ``phase`` for this worker process, as ``task``'s try;
    ``LeaseLost`` if the build does not wait for it (see ``build_store.start_phase``).

    While MongoDB does not answer, the claim is tried again (``OutageWait``) for
    up to ``BINDER_SERVICE_WAIT``, unless this worker process is stopping, before
    ``NoDatabase`` reaches the task, whose retry is a new message. With the
    broker away too (this host cut off), that retry could not be sent and Celery
    would drop the message it holds (leaving the build to the reaper's backstop):
    the claim waits on, holding the message, while the broker is away as well.
    A claim that landed unanswered is taken again as this process's own. A
    stopping process does not wait: ``WorkerStopping`` when the broker is away
    too, so the message goes back to its queue unacknowledged, as a hand-back's.

    A claim MongoDB answers with an error is tried again a few times
    (``store_errors.retried``); then ``BadDatabase`` (see ``_claim_refused``).
    """
    wait = OutageWait(config, give_up_when=stopping.requested)
    doing = f"claiming {phase.value} of {build_id}"
    try:
        return wait.call(lambda: retried(lambda: _claim(build_id, attempt, phase, config, task),
                                         doing),
                         doing,
                         # The retry could not be sent: the message would be lost.
                         longer_while=lambda: broker_epoch(config) is None)
    except OutageTooLong as exc:
        if stopping.requested() and broker_epoch(config) is None:
            raise stopping.WorkerStopping() from exc
        raise NoDatabase(f"The build database (MongoDB) cannot be reached: {exc}.") from exc


def _claim(build_id: str, attempt: int, phase: Phase, config: Config,
           task: build_store.TaskTry | None = None) -> BuildRecord:
    """One try of ``claim``.

    A phase whose process died comes back to another process of the same
    worker (the task is late-acked): it takes the phase over from the dead one,
    and the phase keeps its start time. So does a later try of the task whose
    claim landed unanswered (the store stopped answering; Celery retried the
    task, maybe on another process), without a death counted.
    """
    extra = {"attempt_start": utcnow()} if phase is Phase.FETCHING else {}
    me, host, after = liveness.worker_name(config), config.worker_host, previous_phase(phase)
    try:
        return build_store.start_phase(build_id, attempt, phase, after, me, host, extra,
                                       task=task)
    except LeaseLost:
        record = build_store.find_by_id(build_id)
        lease = (record or {}).get("lease") or {}
        holder = lease.get("worker")
        if holder and task is not None and lease.get("task") == task.task \
                and lease.get("retries", task.retries) < task.retries:
            log.warning("%s takes %s of %s over from %s: an earlier try of its task "
                        "claimed it", me, phase.value, build_id, holder)
            return build_store.start_phase(build_id, attempt, phase, after, me, host, extra,
                                           task=task, retried_from=holder)
        if not holder or not liveness.died_here(holder, config):
            raise
        log.warning("%s takes %s of %s over from %s, which died running it",
                    me, phase.value, build_id, holder)
        return build_store.start_phase(build_id, attempt, phase, after, me, host, extra,
                                       replacing=holder, task=task)


def previous_phase(phase: Phase) -> Phase:
    """The phase that hands a build on to ``phase`` (``queued`` for the first)."""
    order = [step.state for step in STEPS]
    index = order.index(phase)
    return order[index - 1] if index else Phase.QUEUED


def run_phase(config: Config, step: Step, build_id: str, attempt: int,
              function: PhaseFunction, hand_on: HandOn | None = None,
              restart: Restart | None = None,
              task: build_store.TaskTry | None = None) -> Outcome:
    """Run one step of one attempt, as ``task``'s try; see the module docstring.

    ``hand_on`` sends the next step; it is called (while this process still
    holds the build) when the step ends with the build going on. If it cannot
    be sent, the build starts again as its next attempt, sent by ``restart``.
    """
    phase = step.state
    with stopping.phase_running(), liveness.holding(build_id):
        try:
            record = claim(build_id, attempt, phase, config, task)
        except LeaseLost:
            log.info("%s of %s attempt %s is not ours to run; dropped",
                     step.name, build_id, attempt)
            _forget_if_ended(config, build_id, attempt)
            return Outcome.DROPPED
        except WorkerStopping as exc:
            # Nothing was claimed (or a claim landed unanswered, which the next
            # delivery counts as a death): nothing to release.
            log.warning("handed %s of %s back before claiming it: %s", step.name,
                        build_id, exc)
            return Outcome.HANDED_BACK
        except BadDatabase:
            return _claim_refused(config, build_id, attempt, phase, restart)
        with bind_build(record["name"], step.name, attempt):
            # One line as each phase starts and ends, so an operator follows a build
            # through the process logs of every host (grep build=NAME).
            log.info("phase %s started (build id %s)", step.name, build_id)
            started = time.monotonic()
            wait = OutageWait(config)
            outcome = _run_claimed(config, record, phase, function, wait)
            if outcome is Outcome.CONTINUE and hand_on is not None:
                outcome = _hand_on(config, record, hand_on, restart, wait)
            log.info("phase %s ended: %s in %.1f s", step.name, outcome.value,
                     time.monotonic() - started)
            return outcome


def _claim_refused(config: Config, build_id: str, attempt: int, phase: Phase,
                   restart: Restart | None) -> Outcome:
    """MongoDB kept answering the claim of ``phase`` with an error: start the build
    again as its next attempt (``leases.restart``: past ``BINDER_MAX_ATTEMPTS`` it
    fails, as the farm's fault), if it still waits for that phase with nobody holding
    it, rather than leave it to the reaper's backstop (an hour between phases). A
    refusal that lasts fails every attempt's claim in turn, so this ends too. A store
    that refuses the restart as well leaves the build to the reaper."""
    reason = f"the build database answered the claim of its {phase.value} phase with an error"
    try:
        current = build_store.find_by_id(build_id)
        if current is None or not _waits_for(current, attempt, phase, config):
            log.error("%s of %s: %s; the build no longer waits for it", phase.value,
                      build_id, reason)
            return Outcome.DROPPED
        restarted = leases.restart(current, reason, config)
    except (NoDatabase, BadDatabase) as exc:
        log.error("%s of %s: %s, and it could not be started again (%s); the reaper "
                  "starts it again", phase.value, build_id, reason, exc)
        return Outcome.DROPPED
    log.error("%s of %s: %s; %s", phase.value, build_id, reason,
              "started again" if restarted is not None else "it ended or moved on meanwhile")
    if restarted is not None and restart is not None:
        restart(restarted)
    return Outcome.DROPPED


def _waits_for(record: BuildRecord, attempt: int, phase: Phase, config: Config) -> bool:
    """Whether ``record``'s ``attempt`` waits, unheld, for ``phase`` on this host (the
    claim's own conditions, ``build_store.start_phase``, but a takeover's)."""
    if record.get("status") != Status.RUNNING.value or record.get("attempt") != attempt:
        return False
    lease = record.get("lease")
    if lease is None:
        return previous_phase(phase) is Phase.QUEUED and record.get("phase") == Phase.QUEUED.value
    return (lease.get("worker") is None and lease.get("host") == config.worker_host
            and record.get("phase") in (previous_phase(phase).value, phase.value))


def _run_claimed(config: Config, record: BuildRecord, phase: Phase,
                 function: PhaseFunction, wait: OutageWait) -> Outcome:
    build_id, attempt, host = record["build_id"], record["attempt"], config.worker_host
    writer: BuildLogWriter | None = None
    run: PhaseRun | None = None
    try:
        # Open before anything can end the build: its log ends with the end line
        # however it ends, also here, where the log stops at a dead process's last line.
        # Numbered on from where the phase before left the log, when that is known.
        writer = wait.call(lambda: BuildLogWriter(build_id, config,
                                                  build_store.carried_log_end(record)),
                           "opening the log")
        if record.get("cancel_requested"):
            # Nothing of this phase ran: the attempt pushed only if a phase before it did.
            return _end(config, record, Status.CANCELLED, wait, "Cancelled by request.",
                        writer=writer, pushed=previous_phase(phase) not in BEFORE_PUSH)
        deaths = build_store.phase_deaths(record, phase)
        if deaths >= config.max_deliveries:
            return _end(config, record, Status.FAILED, wait, _worker_died_message(phase, deaths),
                        writer=writer, cause=FailureCause.FARM)
        deadline, minutes = _deadline(record, config, phase)
        guard = PhaseGuard(build_id, attempt, phase, deadline, minutes, config.heartbeat_interval)
        run = PhaseRun(config, record, guard, writer, phase)
        with guard:
            run.say(phase_banner(phase.value, host, attempt))
            _say_why_again(run, record, deaths)
            result = _run_stoppable(run, function, wait)
        changes = dict(result.changes)
        if result.complete:
            return _end(config, record, Status.COMPLETED, wait, None, changes, writer)
        # The epoch of the broker that will carry the hand-off: if Redis
        # restarts before the next phase starts, the reaper knows the message
        # was lost. Unknown (Redis unreachable just now) keeps the last one.
        epoch = broker_epoch(config)
        if epoch is not None:
            changes["broker_epoch"] = epoch
        # The next phase numbers its lines on from here (no line of this one follows).
        changes.update(build_store.log_end(attempt, writer.last_line))
        worker = liveness.worker_name(config)
        ending = f"ending {phase.value}"
        # Still refused after its tries, the end fails the build as the farm's fault
        # (the handler of any unexpected failure, below).
        wait.call(lambda: retried(lambda: build_store.end_phase(build_id, attempt, phase,
                                                                worker, changes), ending),
                  ending)
        # The epoch the hand-off is judged by (``_note_epoch``): the one just written,
        # else the one the claim read (only this process writes it while it holds the build).
        record["broker_epoch"] = changes.get("broker_epoch", record.get("broker_epoch"))
        return Outcome.CONTINUE
    except WorkerStopping as exc:
        return _hand_back(config, record, exc, writer)
    except BuildCancelled:
        return _end(config, record, Status.CANCELLED, wait, "Cancelled by request.",
                    writer=writer, pushed=_pushed(run))
    except BuildFailure as exc:
        return _end(config, record, Status.FAILED, wait, exc.message,
                    exc.changes if isinstance(exc, PhaseFailure) else None, writer=writer,
                    suggestions=exc.suggestions, cause=exc.cause, pushed=_pushed(run))
    except LeaseLost:
        log.warning("%s lost the lease of %s during %s", liveness.worker_name(config),
                    build_id, phase.value)
        _remove_workdir(config, build_id, attempt)
        return Outcome.DROPPED
    except OutageTooLong as exc:
        if writer is not None:
            # The store the log goes to may be the service that is away.
            with contextlib.suppress(*LOG_LOST):
                writer.write(f"== {phase.value} given back: {exc}; the farm starts the "
                             "build again")
        return _give_back(config, record, str(exc))
    except Exception as exc:
        log.exception("%s of %s failed unexpectedly", phase.value, build_id)
        message = unexpected_failure(phase, exc)
        return _end(config, record, Status.FAILED, wait, message, writer=writer,
                    cause=FailureCause.FARM, pushed=_pushed(run))
    finally:
        if writer is not None:
            _close_log(writer, wait)


#: Characters of an unexpected exception's text told in a build's error.
UNEXPECTED_CHARS = 300
#: The user name and password of a URL (``redis://:PASSWORD@host``).
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


def unexpected_failure(phase: Phase, exc: Exception) -> str:
    """The error of a build that failed with what the farm did not expect. The record is
    shown to whoever reads builds, and the exception's text is of any length and may
    hold a service's URL: it is told bounded, on one line, without credentials (the
    worker's log has it whole)."""
    told = shorten(_URL_CREDENTIALS.sub("***@", f"{type(exc).__name__}: {exc}"),
                   UNEXPECTED_CHARS)
    return (f"The farm failed in phase {phase.value} ({told}); retry the build, and tell "
            "the operators if it persists.")


#: A phase that lost a service half-way runs again (from its start) this often.
PHASE_RUNS = 3


def _run_function(run: PhaseRun, function: PhaseFunction, wait: OutageWait) -> PhaseResult:
    """Run the phase function; if a service it needed stopped answering (MongoDB,
    the Docker engine, the registry), wait for it and run the phase again
    (phases are idempotent). One that MongoDB answered with an error runs again a
    pause later, as the writes of a phase's life are tried again (``store_errors``)."""
    phase = run.state.value
    for count in range(1, PHASE_RUNS + 1):
        try:
            return function(run) or PhaseResult()
        except (NoDatabase, ServiceLost, BadDatabase) as exc:
            stopped = run.guard.reason
            if isinstance(stopped, Exception):
                # Stopped on purpose (cancelled, timed out, handed back) and then a
                # service failed its cleanup: the phase ends for why it stopped, not
                # run again after the outage.
                raise stopped from exc
            if isinstance(exc, BadDatabase):
                if count == PHASE_RUNS:
                    raise  # lasting (a lost permission): the farm's failure, not run forever
                with contextlib.suppress(*LOG_LOST):
                    run.say(f"the build database refused a write during {phase}; "
                            f"running {phase} again")
                time.sleep(ERROR_PAUSE_SECONDS)
                continue
            lost = exc if isinstance(exc, ServiceLost) else None
            service = lost.service if lost else "the database"
            if count == PHASE_RUNS:
                raise OutageTooLong(f"{service} failed {count} runs of {phase}") from exc
            # The log's store may be the service that is away: the notes are best effort.
            with contextlib.suppress(*LOG_LOST):
                run.say(f"{service} stopped answering during {phase}; waiting for it")
            wait.until_back(lost, f"running {phase}")
            with contextlib.suppress(*LOG_LOST):
                run.say(f"{service} is back; running {phase} again")
    raise AssertionError("unreachable")


def _run_stoppable(run: PhaseRun, function: PhaseFunction, wait: OutageWait) -> PhaseResult:
    """Run the phase function, then ask the guard whether the phase must stop.

    Whatever ends the phase while its worker process is stopping raises
    ``WorkerStopping``: the stop, not the repository, ended it (a Docker
    build the stop reached first fails, before the guard has seen the stop).
    """
    try:
        result = _run_function(run, function, wait)
        # A phase that hands the build on learns of a cancel or a lost lease as it ends
        # (``build_store.end_phase`` refuses both): only the last asks the store here,
        # tried again as a write of the phase's end is (a refusal would fail a build
        # whose work is done).
        retried(lambda: run.guard.check(ask_store=result.complete),
                f"asking whether {run.state.value} of {run.build_id} was cancelled")
    except Exception as exc:
        if stopping.requested() and not isinstance(exc, WorkerStopping):
            raise WorkerStopping() from exc
        raise
    return result


def _say_why_again(run: PhaseRun, record: BuildRecord, deaths: int) -> None:
    """Tell the build's log why its phase starts once more, if it does."""
    phase = run.state
    if deaths:
        run.say(f"== {phase.value} runs again: its worker process died "
                f"{deaths} time(s) (at most {run.config.max_deliveries})")
    hand_backs = build_store.phase_hand_backs(record, phase)
    if hand_backs:
        run.say(f"== {phase.value} runs again: a stopping worker handed it back "
                f"{hand_backs} time(s)")


def _hand_back(config: Config, record: BuildRecord, reason: WorkerStopping,
               writer: BuildLogWriter | None) -> Outcome:
    """This worker process is stopping: release the phase for the next worker,
    without a death counted. What the attempt made on this host stays there for
    the next run of the phase. If the release cannot be written, the phase's
    next delivery counts as a death (it is never lost)."""
    build_id, attempt, name = record["build_id"], record["attempt"], record["name"]
    phase = Phase(record["phase"])
    worker = liveness.worker_name(config)
    if writer is not None:
        with contextlib.suppress(*LOG_LOST):  # the log's store may be away: the line only
            writer.write(f"== {phase.value} handed back: {reason}; the next worker of the "
                         f"farm runs {phase.value} again")
    try:
        # The broker the task's message goes back to once this returns
        # (``workers/pipeline.py``): one that restarted while the phase ran holds it.
        build_store.release_phase(build_id, attempt, phase, worker, broker_epoch(config))
    except LeaseLost:
        log.info("%s of %s was no longer %s's to hand back", phase.value, name, worker)
        return Outcome.DROPPED
    except (NoDatabase, BadDatabase):
        log.warning("could not record that %s handed %s of %s back; its next start counts "
                    "as a death", worker, phase.value, name)
    log.warning("handed %s of %s back: %s", phase.value, name, reason)
    return Outcome.HANDED_BACK


def _pushed(run: PhaseRun | None) -> bool | None:
    """Whether the attempt's push landed, if the phase that ends now knows."""
    return run.pushed if run is not None else None


def _worker_died_message(phase: Phase, deaths: int) -> str:
    return (f"The build took its worker process down {deaths} times in phase {phase.value} "
            "(killed, or out of memory), so it was failed instead of being run again.")


def _hand_on(config: Config, record: BuildRecord, send: HandOn, restart: Restart | None,
             wait: OutageWait) -> Outcome:
    """Send the next phase, trying again while the broker is unreachable, up to
    ``BINDER_SERVICE_WAIT``, or until this worker process is asked to stop (nobody
    else would send it: it is killed soon after); then give the build back to be
    started again. If MongoDB does not take that restart either, the build stays
    this process's as one it could not send on (``liveness.could_not_send``), with
    what the attempt made on this host: the reaper sends the next phase here once
    it can (released, the build would look handed on)."""
    deadline = time.monotonic() + config.service_wait
    while True:
        try:
            epoch = broker_epoch(config)  # before: see ``_note_epoch``
            send(record)
            _note_epoch(record, epoch, wait)
            return Outcome.CONTINUE
        except BROKER_ERRORS as exc:
            if time.monotonic() >= deadline or stopping.requested():
                reason = f"its next phase could not be sent ({exc})"
                break
            log.warning("broker unreachable handing %s on; trying again", record["name"])
            time.sleep(HAND_ON_RETRY_SECONDS)
    try:
        current = wait.call(lambda: build_store.find_by_id(record["build_id"]), "giving back")
        restarted = wait.call(lambda: leases.restart(current, reason, config),
                              "starting it again") if current else None
    except (OutageTooLong, BadDatabase) as exc:
        log.error("could not send %s on nor start it again: %s; %s", record["name"], reason,
                  exc)
        liveness.could_not_send(record["build_id"])
        return Outcome.DROPPED
    if restarted is not None and restart is not None:
        restart(restarted)
    return _give_back(config, record, reason)


HAND_ON_RETRY_SECONDS = 2.0


def _note_epoch(record: BuildRecord, epoch: str | None, wait: OutageWait) -> None:
    """After a hand-off the broker took: if the broker read just before the send,
    ``epoch``, is not the one the record names (it restarted since the phase ended,
    or could not be asked then, so the record kept an older one), the message is in
    it, not lost with the old one; say so. Read after the send, a broker restarting
    just after it took the message would be recorded as holding it."""
    if epoch is None or epoch == record.get("broker_epoch"):
        return
    build_id, attempt = record["build_id"], record["attempt"]
    # Best effort, a refusal too: the next phase's claim moves the build on anyway.
    with contextlib.suppress(LeaseLost, OutageTooLong, BadDatabase):
        wait.call(lambda: build_store.set_running(build_id, attempt, {"broker_epoch": epoch}),
                  "recording the broker's epoch")


def _give_back(config: Config, record: BuildRecord, reason: str) -> Outcome:
    """Stop holding the build; the reaper starts it again (this worker's next
    liveness record no longer lists it)."""
    log.error("gave %s back: %s", record["name"], reason)
    liveness.let_go(record["build_id"])
    _remove_workdir(config, record["build_id"], record["attempt"])
    return Outcome.DROPPED


def _close_log(writer: BuildLogWriter, wait: OutageWait) -> None:
    try:
        wait.call(writer.close, "storing the log")
    except (OutageTooLong, BadDatabase):
        log.warning("could not store the end of the log of %s", writer.build_id)


def _end(config: Config, record: BuildRecord, status: Status, wait: OutageWait,
         error: str | None, changes: dict[str, Any] | None = None,
         writer: BuildLogWriter | None = None, suggestions: list[str] | None = None,
         cause: FailureCause | None = None, pushed: bool | None = None) -> Outcome:
    """End the build ``status`` with ``error``, its ``suggestions`` and (a failure's)
    ``cause``: the log's end line, then the record, with what it says of its image
    (``build_store.ended_image``, told whether the attempt ``pushed`` when that is
    known; ``changes`` that name the image win)."""
    build_id, attempt = record["build_id"], record["attempt"]
    # A failure's sentence may quote the repository's output (a step's, the image's).
    error = plain_line(error) if error is not None else None
    suggestions = [plain_line(each) for each in suggestions] if suggestions else suggestions
    if writer is not None:
        # A log whose store stayed away loses its end line, not the build its end.
        with contextlib.suppress(*LOG_LOST):
            writer.write(end_line(status.value, error, suggestions))
        # A follower that sees the build end has every line.
        with contextlib.suppress(OutageTooLong, BadDatabase):
            wait.call(writer.flush, "storing the log")
    # The phase that ended the build ends too (a cache hit ends in fetch; the last
    # step completes the build): every phase that started has its end time.
    changes = {**build_store.ended_image(record, status, pushed), **(changes or {}),
               f"phases.{record['phase']}.end": utcnow()}
    doing = f"ending the build {status.value}"
    try:
        # A fresh bound, and past it too: a build given back now would be built again
        # from its start, though it ended; waiting loses nothing, since the process can
        # do nothing else without MongoDB either. Not past it while this process is
        # stopping: it is killed soon.
        OutageWait(config).call(
            lambda: retried(lambda: build_store.finish(build_id, attempt, status, error,
                                                       changes, suggestions, cause), doing),
            doing, longer_while=lambda: not stopping.requested())
    except (OutageTooLong, BadDatabase) as exc:
        # Refused for good: given back, the reaper starts it again at its next pass,
        # rather than leave it shown running, held by nobody working on it.
        return _give_back(config, record, f"{doing} failed: {exc}")
    liveness.ended(build_id)
    _remove_workdir(config, build_id, attempt)
    return Outcome.DONE


def _forget_if_ended(config: Config, build_id: str, attempt: int) -> None:
    """A phase that came too late (the build was cancelled or restarted between
    phases) removes what the attempt left on this host."""
    path = work_dir(config, build_id, attempt)
    if not path.exists():
        return
    with contextlib.suppress(NoDatabase, BadDatabase):
        record = build_store.find_by_id(build_id)
        if record is None or record["attempt"] != attempt \
                or record["status"] != Status.RUNNING.value:
            _remove_workdir(config, build_id, attempt)


def _remove_workdir(config: Config, build_id: str, attempt: int) -> None:
    shutil.rmtree(work_dir(config, build_id, attempt), ignore_errors=True)
