"""What every phase shares: claiming the record, the guard, the log, the ending.

``run_phase`` re-reads the build, takes the lease for this phase (or learns
it has none and does nothing: a duplicate or stale task), runs the phase
function under a ``PhaseGuard`` with the build's log open, stores what the
phase returns, and turns every way a phase can end into the right final
state with a sentence a user can act on.

A phase that takes its worker process down (SIGKILL, out of memory) comes
back: its task is late-acked, so the broker delivers it again, to the same
attempt. Every claim counts a delivery; past ``max_deliveries`` the build
fails instead of running the phase once more, and a cancelled build ends
at its next delivery.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from common import build_store
from common.clock import utcnow
from common.config import Config
from common.errors import BuildCancelled, BuildFailure, LeaseLost, NoDatabase
from common.log_store import BuildLogWriter, phase_banner
from common.models import BuildRecord, Phase, Status, Step
from workers.dispatch import broker_epoch
from workers.guard import PhaseGuard
from workers.process_logs import bind_build

log = logging.getLogger(__name__)


class Outcome(Enum):
    CONTINUE = "continue"  # hand on to the next phase
    DONE = "done"  # the build ended (completed, failed, cancelled)
    DROPPED = "dropped"  # not ours to run (stale attempt, duplicate)


@dataclass
class PhaseRun:
    """What a phase function gets."""

    config: Config
    record: BuildRecord
    guard: PhaseGuard
    log: BuildLogWriter
    state: Phase

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


PhaseFunction = Callable[[PhaseRun], PhaseResult | None]


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


def claim(build_id: str, attempt: int, phase: Phase, worker: str) -> BuildRecord:
    """Take the lease for ``phase``; raise ``LeaseLost`` if another holds it.

    fetch starts an attempt (nobody holds it yet, or this worker after a
    redelivery); later phases continue on the host whose worker holds it.
    """
    extra = {"attempt_start": utcnow()} if phase is Phase.FETCHING else {}
    return build_store.start_phase(build_id, attempt, phase, worker, extra)


def run_phase(config: Config, step: Step, build_id: str, attempt: int,
              function: PhaseFunction) -> Outcome:
    """Run one step of one attempt; see the module docstring."""
    phase = step.state
    try:
        record = claim(build_id, attempt, phase, config.worker_host)
    except LeaseLost:
        log.info("%s of %s attempt %s is not ours to run; dropped", step.name, build_id, attempt)
        return Outcome.DROPPED
    with bind_build(record["name"], step.name, attempt):
        # One line as each phase starts and ends, so an operator follows a build
        # through the process logs of every host (grep build=NAME).
        log.info("phase %s started (build id %s)", step.name, build_id)
        started = time.monotonic()
        outcome = _run_claimed(config, record, phase, function)
        log.info("phase %s ended: %s in %.1f s", step.name, outcome.value,
                 time.monotonic() - started)
        return outcome


def _run_claimed(config: Config, record: BuildRecord, phase: Phase,
                 function: PhaseFunction) -> Outcome:
    build_id, attempt, worker = record["build_id"], record["attempt"], config.worker_host
    if record.get("cancel_requested"):
        return _end(config, record, Status.CANCELLED, "Cancelled by request.")
    deadline, minutes = _deadline(record, config, phase)
    writer = BuildLogWriter(build_id, config)
    guard = PhaseGuard(build_id, attempt, phase, deadline, minutes, config.heartbeat_interval)
    run = PhaseRun(config, record, guard, writer, phase)
    try:
        deliveries = build_store.phase_deliveries(record, phase)
        if deliveries > config.max_deliveries:
            message = _worker_died_message(phase, deliveries - 1)
            return _end(config, record, Status.FAILED, message, writer=writer)
        with guard:
            run.say(phase_banner(phase.value, worker, attempt))
            if deliveries > 1:
                run.say(f"== {phase.value} runs again: its worker process died "
                        f"{deliveries - 1} time(s) (at most {config.max_deliveries})")
            result = function(run) or PhaseResult()
            guard.check()
        changes = dict(result.changes)
        if result.complete:
            return _end(config, record, Status.COMPLETED, None, changes, writer)
        # The epoch of the broker that will carry the hand-off: if Redis
        # restarts before the next phase starts, the reaper knows the message
        # was lost.
        changes["broker_epoch"] = broker_epoch(config)
        build_store.end_phase(build_id, attempt, phase, changes)
        return Outcome.CONTINUE
    except BuildCancelled:
        return _end(config, record, Status.CANCELLED, "Cancelled by request.", writer=writer)
    except BuildFailure as exc:
        return _end(config, record, Status.FAILED, exc.message, writer=writer)
    except LeaseLost:
        log.warning("%s lost the lease of %s during %s", worker, build_id, phase.value)
        _remove_workdir(config, build_id, attempt)
        return Outcome.DROPPED
    except NoDatabase:
        # The heartbeat stops with us; the reaper restarts the build once the
        # database is back, so nothing stays running for ever.
        log.exception("database lost during %s of %s", phase.value, build_id)
        return Outcome.DROPPED
    except Exception as exc:
        log.exception("%s of %s failed unexpectedly", phase.value, build_id)
        message = (f"The farm failed in phase {phase.value} ({type(exc).__name__}: {exc}); "
                   "retry the build, and tell the operators if it persists.")
        return _end(config, record, Status.FAILED, message, writer=writer)
    finally:
        try:
            writer.close()
        except NoDatabase:
            log.warning("could not flush the log of %s", build_id)


def _worker_died_message(phase: Phase, deaths: int) -> str:
    return (f"The build took its worker process down {deaths} times in phase {phase.value} "
            "(killed, or out of memory), so it was failed instead of being run again.")


def _end(config: Config, record: BuildRecord, status: Status, error: str | None,
         changes: dict[str, Any] | None = None, writer: BuildLogWriter | None = None) -> Outcome:
    build_id, attempt = record["build_id"], record["attempt"]
    if writer is not None:
        writer.write(f"== build {status.value}" + (f": {error}" if error else ""))
        writer.flush()  # a follower that sees the build end has every line
    # The phase that ended the build ends too (a cache hit ends in fetch; the last
    # step completes the build): every phase that started has its end time.
    changes = {**(changes or {}), f"phases.{record['phase']}.end": utcnow()}
    build_store.finish(build_id, attempt, status, error, changes)
    _remove_workdir(config, build_id, attempt)
    return Outcome.DONE


def _remove_workdir(config: Config, build_id: str, attempt: int) -> None:
    shutil.rmtree(work_dir(config, build_id, attempt), ignore_errors=True)
