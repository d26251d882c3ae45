"""Build records in MongoDB: the truth about every build.

One document per build name in ``builds`` holds the current attempt; when a
name is built again the finished record is archived to ``attempts`` first,
so history survives. Workers address a record by ``build_id`` and the
``attempt`` they were handed: every write filters on both plus
``status: running``, so a stale worker (or a duplicate task) writes nothing
and learns it lost the lease.

A record's ``image_name`` is set by the fetch phase, before anything is
pushed. Whatever ends an attempt (its worker, ``leases.end_unheld``, a forced
rebuild archiving it) asks ``ended_image`` what the ended record says of its
image: one that ended before its push names none, so nobody pulls an image
that this build never put in the registry.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, NamedTuple

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from common import db
from common.clock import utcnow
from common.db import ensure_indexes, translate_errors
from common.errors import AlreadyBuilding, BuildCancelled, LeaseLost, NameTaken, NoBuildInfo
from common.models import BEFORE_PUSH, FINAL_STATUSES, BuildRecord, FailureCause, Phase, Status
from common.name_store import belongs


def new_build_id() -> str:
    return uuid.uuid4().hex


def new_record(name: str, fields: dict[str, Any], build_id: str | None = None) -> BuildRecord:
    now = utcnow()
    record: BuildRecord = {
        "_id": name,  # see current_record()
        "build_id": build_id or new_build_id(),
        "name": name,
        "status": Status.RUNNING.value,
        "phase": Phase.QUEUED.value,
        "start_time": now,
        "end_time": None,
        "attempt": 1,
        "lease": None,
        "heartbeat": None,
        "enqueued": False,
        "cancel_requested": False,
        "error": None,
        "suggestions": [],
        "commit": None,
        "image_name": None,
        "image_source": None,
        "config": None,
        "worker": None,
        "workers": [],
        "cached": False,
        "phases": {},
    }
    record.update(fields)  # type: ignore[typeddict-item]  # the request's own fields
    return record


def create_build(name: str, fields: dict[str, Any], force: bool = False,
                 build_id: str | None = None, absent: bool = False) -> BuildRecord:
    """Store a new build named ``name`` (running, unless ``fields`` say otherwise) and
    return it; ``build_id`` when the caller already wrote under it (its log).
    ``absent``: the caller found no record of ``name`` just before (``check_startable``),
    so the record is inserted without reading the name's record again; one stored
    meanwhile makes it ``AlreadyBuilding``, as a lost race always does.

    Raises ``AlreadyBuilding`` when a build of that name is running, unless
    ``force``: then the running one is cancelled and replaced. Racing
    creators are serialised by the unique index on ``name``: one wins.
    A current record of another repository or ref (the name was not
    claimed through ``common/name_store.py``) is never replaced:
    ``NameTaken``.
    """
    ensure_indexes()
    record = new_record(name, fields, build_id)
    with translate_errors():
        if absent:
            return _insert(name, record)
        for _ in range(SUPERSEDE_TRIES):
            current = current_record(name)
            _refuse_start(current, name, fields, force)
            if current is None:
                return _insert(name, record)
            stored = _supersede(name, current, record)
            if stored is not None:
                return stored
    raise _already_building(name)


#: Reads of the current record a start makes while that record keeps changing under it.
SUPERSEDE_TRIES = 3


def _insert(name: str, record: BuildRecord) -> BuildRecord:
    try:
        db.builds().insert_one(record)
    except DuplicateKeyError:
        return _ours_or_already_building(name, record)
    return record


def _supersede(name: str, current: BuildRecord, record: BuildRecord) -> BuildRecord | None:
    """Archive ``current`` and store ``record`` in its place; ``None`` when ``current``
    changed meanwhile (its worker ended it, the reaper started it again): the caller
    reads it again, and archives it as it is then.

    Only the very record archived is replaced: a build that completed between the
    read and the replace is archived completed, not cancelled by this rebuild.
    """
    archive(current, cancelled=current["status"] == Status.RUNNING.value)
    superseded = {"_id": current["_id"], "build_id": current["build_id"],
                  "status": current["status"], "attempt": current.get("attempt"),
                  "phase": current.get("phase")}
    if current["_id"] == name:
        # Not find_one_and_replace: see ``db.update_and_read``.
        if db.builds().replace_one(superseded, record).matched_count:
            return record
    elif db.builds().delete_one(superseded).deleted_count:
        # A record stored before records were keyed by name: its ``_id`` cannot
        # change in place, so it goes and the new one is stored under the name.
        return _insert(name, record)
    stored = current_record(name)
    if stored is not None and stored["build_id"] == current["build_id"]:
        return None
    return _ours_or_already_building(name, record)


def _ours_or_already_building(name: str, record: BuildRecord) -> BuildRecord:
    """After a write that seemed to lose a race: the stored record, if it is ours.

    pymongo retries a write whose answer was lost; when the first try had
    landed, the retry finds the record already there (a duplicate name, or
    a replace that no longer matches). The fresh ``build_id`` tells our own
    write from another request's.
    """
    stored = current_record(name)
    if stored is not None and stored["build_id"] == record["build_id"]:
        return stored
    raise _already_building(name)


def _already_building(name: str) -> AlreadyBuilding:
    return AlreadyBuilding(f"Already building the image {name}: another request "
                           "started it just now.",
                           suggestions=["Read its status with GET /builds/NAME."], name=name)


def check_startable(name: str, fields: dict[str, Any]) -> bool:
    """Raise what ``create_build`` would for this start now (``AlreadyBuilding``,
    ``NameTaken``), storing nothing: a start that cannot be stored is refused before
    the work that comes before storing it (resolving its ref). True when ``name`` has
    no record (``create_build``'s ``absent``); a forced start reads none and says False."""
    if fields.get("force"):
        return False
    with translate_errors():
        current = current_record(name)
    _refuse_start(current, name, fields, force=False)
    return current is None


def _refuse_start(current: BuildRecord | None, name: str, fields: dict[str, Any],
                  force: bool) -> None:
    if current is None:
        return
    if "repository" in fields and not belongs(current, fields["repository"], fields.get("ref")):
        raise NameTaken(
            f"The build name {name} belongs to another repository.",
            suggestions=["Retry the request; tell the operators if it persists."])
    if current["status"] == Status.RUNNING.value and not force:
        raise AlreadyBuilding(
            f"Already building the image {name} (phase {current['phase']}).",
            suggestions=["Wait for it to finish, or send force: true to restart it."],
            name=name)


def archive(record: BuildRecord, cancelled: bool = False) -> None:
    """Copy a finished (or superseded) attempt into the history collection."""
    copy = {key: value for key, value in record.items() if key != "_id"}
    if cancelled:
        copy.update(status=Status.CANCELLED.value, error="Replaced by a forced rebuild.",
                    suggestions=[], end_time=utcnow(),
                    **ended_image(record, Status.CANCELLED))
    db.attempts().replace_one({"build_id": copy["build_id"]}, copy, upsert=True)


def unpushed(image: str | None) -> dict[str, Any]:
    """The fields of an ended attempt that was to push ``image`` and pushed nothing: it
    names no image (``image_name`` None), and keeps the one it planned as
    ``planned_image`` for operators. Its tag may hold another build's image (a forced
    rebuild's predecessor), which stays that build's: nothing here touches it."""
    return {"image_name": None, "planned_image": image} if image else {}


def ended_image(record: BuildRecord, status: Status,
                pushed: bool | None = None) -> dict[str, Any]:
    """What ``record``'s attempt, ending ``status`` now, says of its image: the fields to
    write with its end.

    A completed build names its image (pushed, or a cache hit's reused). A failed or
    cancelled attempt that pushed nothing names none (``unpushed``). ``pushed`` says
    whether its push landed, when the caller knows (the worker running its push
    phase); else its phase tells: one that ended before its push phase
    (``BEFORE_PUSH``) pushed nothing, one that ended in or after it keeps naming its
    image, since its push may have landed.
    """
    if status is Status.COMPLETED:
        return {}
    if pushed is None:
        pushed = record.get("phase") not in BEFORE_PUSH
    return {} if pushed else unpushed(record.get("image_name"))


#: The protocol's message for ``noBuildInfo``; ours adds which build.
NO_BUILD_INFO = "Could not get build information for requested image"


def _no_build(name: str) -> NoBuildInfo:
    return NoBuildInfo(f"{NO_BUILD_INFO}: no build named {name}.",
                       suggestions=["Is the name spelled correctly? List builds with "
                                    "GET /builds/, or start one with POST /builds/repo."])


def current_record(name: str) -> BuildRecord | None:
    """The current record of ``name``, if any.

    Records are stored under their name as ``_id``: the embedded store
    (SecantusDB) finds a document by ``_id`` for half the CPU a lookup through
    the ``name`` index takes (bench/api_reads.py), and MongoDB answers both from
    an index. A record stored before that has another ``_id`` and is found by
    its name; so is a name never built, which costs that second read.

    Reads ask for whole records: the embedded store compiles a projection on
    every read, which costs it more than sending the keys the API does not
    serve; readers that serve records dump them through a schema, which emits
    only the fields it declares.
    """
    builds = db.builds()
    return builds.find_one({"_id": name}) or builds.find_one({"name": name})


def get_build(name: str) -> BuildRecord:
    """The current record of ``name``; raises ``NoBuildInfo`` when unknown."""
    with translate_errors():
        record = current_record(name)
    if record is None:
        raise _no_build(name)
    return record


def completed_with_image(image: str) -> BuildRecord | None:
    """The current record of a completed build that made ``image``, if any: an image
    counts as built only when such a record says so."""
    with translate_errors():
        return db.builds().find_one({"image_name": image, "status": Status.COMPLETED.value})


def image_maker(record: BuildRecord) -> str:
    """The build id of the build that made the image of ``record``, a completed build:
    its own, or, for a cache hit, that of the build the hit reused (``built_by``).

    A hit answered from another hit names the build that made the image, not the
    hit before it. A hit stored before hits kept ``built_by`` names itself."""
    return record.get("built_by") or record["build_id"]


def earlier_maker(name: str, image: str) -> str | None:
    """The build id of the build that made ``image`` according to the newest completed
    archived attempt of ``name`` that names it (``image_maker``), if any: what a
    running build of ``name`` that found ``image`` built reuses."""
    with translate_errors():
        found = list(db.attempts().find({"name": name, "image_name": image,
                                         "status": Status.COMPLETED.value})
                     .sort(NEWEST_FIRST).limit(1))
    return image_maker(found[0]) if found else None


def completed_images(name: str) -> dict[str, str]:
    """The images the completed builds of ``name`` name (current and archived) that
    retention has not deleted, each with the build that made it (``image_maker``)."""
    query = {"name": name, "status": Status.COMPLETED.value}
    with translate_errors():
        records = [*db.attempts().find(query), *db.builds().find(query)]
    return {record["image_name"]: image_maker(record) for record in records
            if record.get("image_name") and not record.get("image_pruned")}


#: Newest first; ``_id`` breaks ties so pages do not overlap.
NEWEST_FIRST = [("start_time", DESCENDING), ("_id", DESCENDING)]
HISTORY_LIMIT = 100


def list_builds(status: str | None = None, repository: str | None = None,
                limit: int = 100, offset: int = 0,
                ref: str | None = None) -> list[BuildRecord]:
    """Current records, newest first, optionally of one ``status`` or ``repository``;
    with ``ref``, only the builds of the repository at that ref."""
    selector: dict[str, Any] = {}
    if status is not None:
        selector["status"] = status
    if repository is not None:
        selector["repository"] = repository
    if ref is not None:
        selector["ref"] = ref
    with translate_errors():
        return db.newest(db.builds(), selector, NEWEST_FIRST, offset + limit)[offset:]


def history(name: str) -> list[BuildRecord]:
    """Every attempt of ``name``, newest first: the current one, then archived ones.

    Raises ``NoBuildInfo`` when ``name`` was never built.
    """
    with translate_errors():
        current = current_record(name)
        past = list(db.attempts().find({"name": name})
                    .sort(NEWEST_FIRST).limit(HISTORY_LIMIT))
    if current is None and not past:
        raise _no_build(name)
    newest = [current] if current else []
    seen = {record["build_id"] for record in newest}
    return newest + [record for record in past if record["build_id"] not in seen]


def find_by_id(build_id: str) -> BuildRecord | None:
    """The current record whose attempt is ``build_id``'s, if any."""
    with translate_errors():
        return db.builds().find_one({"build_id": build_id})


def find_attempt(name: str, build_id: str) -> BuildRecord:
    """The attempt ``build_id`` of ``name``, current or archived; ``NoBuildInfo`` if none."""
    with translate_errors():
        record = (db.builds().find_one({"name": name, "build_id": build_id})
                  or db.attempts().find_one({"name": name, "build_id": build_id}))
    if record is None:
        raise NoBuildInfo(f"{NO_BUILD_INFO}: {name} has no attempt {build_id}.",
                          suggestions=[f"List its attempts: GET /builds/{name}/history."])
    return record


def _running(build_id: str, attempt: int) -> dict[str, Any]:
    return {"build_id": build_id, "attempt": attempt, "status": Status.RUNNING.value}


def _uncancelled(build_id: str, attempt: int) -> dict[str, Any]:
    """The running attempt, while nobody asked to cancel it (a plain equality: the
    embedded store answers it through the ``build_id`` index)."""
    return {**_running(build_id, attempt), "cancel_requested": False}


def update_running(build_id: str, attempt: int, changes: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> BuildRecord:
    """Apply ``$set: changes`` (and ``extra`` operators) to a running attempt.

    Raises ``LeaseLost`` when the attempt is no longer the running one.
    """
    update: dict[str, Any] = {"$set": changes, **(extra or {})}
    with translate_errors():
        record = db.update_and_read(db.builds(), _running(build_id, attempt), update,
                                    {"build_id": build_id})
    # Also when the attempt ended or started again between the update and the read.
    if record is None or not _is_running(record, attempt):
        raise LeaseLost(build_id)
    return record


def set_running(build_id: str, attempt: int, changes: dict[str, Any]) -> None:
    """Apply ``$set: changes`` to a running attempt, for a caller that needs nothing
    back: one round trip, where ``update_running`` reads the record again.

    Raises ``LeaseLost`` when the attempt is no longer the running one (the update,
    atomic, applied only to the running attempt).
    """
    with translate_errors():
        matched = db.builds().update_one(_running(build_id, attempt),
                                         {"$set": changes}).matched_count
    if not matched:
        raise LeaseLost(build_id)


def _is_running(record: BuildRecord, attempt: int) -> bool:
    return record["attempt"] == attempt and record["status"] == Status.RUNNING.value


class TaskTry(NamedTuple):
    """The try of a Celery task a claim comes from: its id, and how many times
    Celery retried it before (``request.retries``)."""

    task: str
    retries: int


def start_phase(build_id: str, attempt: int, phase: Phase, after: Phase, worker: str,
                host: str, extra: dict[str, Any] | None = None,
                replacing: str | None = None, task: TaskTry | None = None,
                retried_from: str | None = None) -> BuildRecord:
    """Take the lease for ``phase`` and mark it started, in one atomic step.

    ``worker`` (a process, see ``worker_store``) on ``host`` may take it when
    the build waits for ``phase``: nobody holds the build and its phase is
    ``after`` (queued for fetch, handed on to ``host`` for later phases), or
    ``worker`` already took this very phase (a redelivered task), or the
    process ``retried_from`` did in an earlier try of the same ``task`` (the
    lease keeps the try that took it: Celery retried a task whose claim
    landed but whose answer was lost, maybe on another process), or the
    process ``replacing`` did and died (its task came back to another process
    of the same worker), or a worker that stopped handed this phase back
    (:func:`release_phase`). Anything else (a stale or duplicate task) gets
    ``LeaseLost``. Each claim but the second and third kinds counts one
    delivery of this phase of this attempt (see :func:`phase_deaths`).

    The phase's start time and ``extra`` are written by its first claim in the
    attempt only: a phase taken over or taken back keeps them, so its times span
    all its runs (the log says why it ran again) and a deadline counted from
    them does not move.

    Each of those cases is tried as its own atomic claim, in that order, rather
    than as one ``$or``: the embedded store answers a filter holding ``$or`` by
    reading every build (4 s at 100,000 builds, past ``BINDER_MONGO_TIMEOUT_MS``,
    so no build could start), and plain equalities through the ``build_id``
    index. A build only moves forward, so the cases in turn take what one
    ``$or`` would.
    """
    now = utcnow()
    lease: dict[str, Any] = {"worker": worker, "host": host, "attempt": attempt, "since": now}
    if task is not None:
        lease.update(task=task.task, retries=task.retries)
    changes = {"phase": phase.value, "worker": host, "heartbeat": now, "lease": lease,
               f"phases.{phase.value}.worker": host}
    started = {**changes, f"phases.{phase.value}.start": now, **(extra or {})}
    waiting: dict[str, Any] = (
        {"lease": None} if after is Phase.QUEUED else {"lease.worker": None, "lease.host": host})
    released = {"lease.worker": None, "lease.released": phase.value, "phase": phase.value,
                **({} if after is Phase.QUEUED else {"lease.host": host})}
    # Each case, and whether its claim is a delivery. One this very process made
    # already is not: it lives (its task came again, retried while the database did
    # not answer after its first claim had landed), so it counts no death.
    cases: list[tuple[dict[str, Any], bool]] = [
        ({**waiting, "phase": after.value}, True),
        ({"lease.worker": worker, "phase": phase.value}, False)]
    if retried_from and task is not None:
        # Its earlier try ended (Celery retries a task after it raised): nothing died.
        cases.append(({"lease.worker": retried_from, "lease.task": task.task,
                       "phase": phase.value}, False))
    if replacing and replacing != worker:
        cases.append(({"lease.worker": replacing, "phase": phase.value}, True))
    cases.append((released, True))
    # A phase an earlier attempt ran has its end: the phase started again has none yet
    # (a stale end before the new start would show it done, and time it as nothing).
    unset = {f"phases.{phase.value}.end": ""}
    every_claim = {"$addToSet": {"workers": host}}
    delivery = {"$inc": {f"deliveries.{attempt}.{phase.value}": 1}}
    with translate_errors():
        for index, (case, delivered) in enumerate(cases):
            # Only the first claim follows the phase that ended on the log's last line:
            # one taken over or back may follow lines its earlier run wrote.
            update = {"$set": started if index == 0 else changes,
                      "$unset": unset if index == 0 else {**unset, LOG_END: ""},
                      **every_claim, **(delivery if delivered else {})}
            record = db.update_and_read(db.builds(), {**_running(build_id, attempt), **case},
                                        update, {"build_id": build_id})
            if record is not None:
                break
        else:
            raise LeaseLost(build_id)
    taken = record.get("lease") or {}
    if not _is_running(record, attempt) or (record["phase"], taken.get("worker")) \
            != (phase.value, worker):
        raise LeaseLost(build_id)  # claimed, and taken from this worker since
    return record


def _count(record: BuildRecord, field: Literal["deliveries", "handed_back"], phase: Phase) -> int:
    per_attempt = (record.get(field) or {}).get(str(record["attempt"])) or {}
    return int(per_attempt.get(phase.value, 0))


def phase_hand_backs(record: BuildRecord, phase: Phase) -> int:
    """How many times a stopping worker handed ``phase`` of the record's attempt back."""
    return _count(record, "handed_back", phase)


def phase_deaths(record: BuildRecord, phase: Phase) -> int:
    """How many times the worker process running ``phase`` of the record's attempt
    died (killed, out of memory) before the claim this record comes from.

    Every claim counts a delivery. One is the first run; each hand-back of a
    stopping worker brings one more; any other means the task came back because
    the process running it died and the broker delivered it again.
    """
    deliveries = _count(record, "deliveries", phase)
    return max(0, deliveries - 1 - phase_hand_backs(record, phase))


def release_phase(build_id: str, attempt: int, phase: Phase, worker: str,
                  epoch: str | None = None) -> BuildRecord:
    """Hand ``phase``, which ``worker`` runs, back: it stopped in order, and the
    phase waits to be claimed again (by a worker of its host; any worker, for
    fetch) without that claim counting as a death. ``epoch``: the broker its
    message goes back to, when known. Raises ``LeaseLost`` when ``worker`` no
    longer holds it."""
    now = utcnow()
    changes: dict[str, Any] = {"lease.worker": None, "lease.released": phase.value,
                               "lease.handed_by": worker, "lease.handed_at": now}
    if epoch is not None:
        changes["broker_epoch"] = epoch
    update = {"$set": changes, "$inc": {f"handed_back.{attempt}.{phase.value}": 1}}
    with translate_errors():
        record = db.update_and_read(
            db.builds(), {**_running(build_id, attempt), "lease.worker": worker,
                          "phase": phase.value}, update, {"build_id": build_id})
    if record is None or not _is_running(record, attempt):
        raise LeaseLost(build_id)
    return record


#: The record's field naming the last line number of the log as the phase that handed
#: the build on left it, and its attempt (``log_end``, ``carried_log_end``).
LOG_END = "log_end"


def log_end(attempt: int, line: int) -> dict[str, Any]:
    """The ``end_phase`` change saying the log of ``attempt`` ends at line ``line``: the
    phase ending writes no line after it."""
    return {LOG_END: {"attempt": attempt, "line": line}}


def carried_log_end(record: BuildRecord) -> int | None:
    """The log's last line number as the phase before this one left it, when nothing
    may have written since (``None``: ask the log's stores).

    Trusted only in the record a phase's first claim read (``start_phase`` clears it
    for any later claim, whose earlier run may have written lines) of the same
    attempt; a farm process that writes to the log between phases clears it too
    (``leases.note_sent_again``).
    """
    carried = record.get("log_end") or {}
    if carried.get("attempt") != record.get("attempt") or "line" not in carried:
        return None
    return int(carried["line"])


def end_phase(build_id: str, attempt: int, phase: Phase, worker: str,
              changes: dict[str, Any]) -> None:
    """Mark ``phase`` done and hand the build on: any worker of its host may take
    the next phase (the lease keeps the host, and ``worker`` as ``handed_by``).

    Unless a cancel of the attempt was requested: then nothing is written and
    ``BuildCancelled`` says so (the phase runner ends the build cancelled, as a
    cancel found by the guard's last look would). ``LeaseLost`` when the attempt is
    no longer the running one. One round trip when neither is the case.
    """
    now = utcnow()
    fields = {f"phases.{phase.value}.end": now, "lease.worker": None,
              "lease.handed_by": worker, "lease.handed_at": now, **changes}
    with translate_errors():
        if db.builds().update_one(_uncancelled(build_id, attempt),
                                  {"$set": fields}).matched_count:
            return
        record = db.builds().find_one({"build_id": build_id})
    if record is None or not _is_running(record, attempt):
        raise LeaseLost(build_id)
    if record.get("cancel_requested"):
        raise BuildCancelled(build_id)
    set_running(build_id, attempt, fields)  # a record that never had the field


def heartbeat(build_id: str, attempt: int) -> bool:
    """Renew the running attempt's heartbeat; whether a cancel of it was requested.
    Raises ``LeaseLost`` when the attempt is no longer the running one.

    One round trip while the attempt runs and nobody asked to cancel it (the update's
    filter asks both); else the record is read to learn which.
    """
    now = utcnow()
    with translate_errors():
        if db.builds().update_one(_uncancelled(build_id, attempt),
                                  {"$set": {"heartbeat": now}}).matched_count:
            return False
    return bool(update_running(build_id, attempt, {"heartbeat": now}).get("cancel_requested"))


def finish(build_id: str, attempt: int, status: Status, error: str | None = None,
           changes: dict[str, Any] | None = None,
           suggestions: list[str] | None = None,
           cause: FailureCause | None = None) -> bool:
    """End a running attempt with ``error``, what to do about it (``suggestions``,
    kept with the record and its archived copy) and, for a failure, its ``cause``;
    returns False if it already ended. One round trip: nobody reads the ended
    record from here."""
    assert status in FINAL_STATUSES
    assert cause is None or status is Status.FAILED, "only a failure has a cause"
    fields: dict[str, Any] = {"status": status.value, "end_time": utcnow(), "lease": None,
                              "error": error, "suggestions": list(suggestions or []),
                              **(changes or {})}
    if cause is not None:
        fields["cause"] = cause.value
    if status is Status.COMPLETED:
        fields["phase"] = Phase.FINISHED.value
    with translate_errors():
        return bool(db.builds().update_one(_running(build_id, attempt),
                                           {"$set": fields}).matched_count)
