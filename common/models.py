"""What a build is: its statuses and phases, the ordered steps, the stored records.

Shared by the API, the workers and MongoDB. Records use snake_case keys; the
Binder protocol's hyphenated names exist only at the wire (``api/schemas``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict


class Status(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class FailureCause(StrEnum):
    """Why a build failed, for operators: whose fault it was and what to look at.

    A failed record's ``cause`` and the ``cause`` label of
    ``binder_builds_failed_total`` (where failures recorded before causes were
    kept count as ``unknown``), so that an alert can tell users' broken
    repositories from the farm failing. The failure decides it where it is
    raised (``BuildFailure.cause``), not from its message.
    """

    #: The repository's own content, config or source: a config file that cannot be
    #: built, a failed build step, a refused file or archive, a repository or ref that
    #: does not exist, its host refusing or not answering. Nothing for operators to do.
    REPOSITORY = "repository"
    #: The build needed more than it was given or its host had: a step killed at the
    #: build memory limit, no space left on the device, a worker short of disk.
    RESOURCES = "resources"
    #: The build ran past its time limit (BINDER_BUILD_TIMEOUT or .binder.yml's), or a
    #: clone, download or push past its own.
    TIMEOUT = "timeout"
    #: The image was built and pushed but did not serve on its port (BINDER_VERIFY).
    VERIFICATION = "verification"
    #: Not the repository's fault: a build lost too many times, a worker process
    #: killed too often, the registry refusing a push or not answering, the farm's own
    #: settings, anything the farm did not expect.
    FARM = "farm"


class Phase(StrEnum):
    """Where a build is: ``queued``, then each step's state, then ``finished``."""

    QUEUED = "queued"
    FETCHING = "fetching"
    DETECTING = "detecting"
    BUILDING = "building"
    PUSHING = "pushing"
    REGISTERING = "registering"
    FINISHED = "finished"


#: The status a person reads for a running build whose cancel was asked and whose
#: worker has yet to stop it (the API keeps it ``running`` until it ends ``cancelled``).
CANCELLING = "cancelling"
#: The statuses only shown (``shown_status``): the farm keeps, and filters, them as running.
SHOWN_AS_RUNNING = (Phase.QUEUED.value, CANCELLING)


def is_queued(record: dict[str, Any]) -> bool:
    """Whether an API build record waits for a worker: running, and no worker has taken
    it yet (phase ``queued``)."""
    return record.get("status") == Status.RUNNING.value and \
        record.get("phase") == Phase.QUEUED.value


def shown_status(record: dict[str, Any]) -> str | None:
    """The status a person reads for an API build record: ``cancelling`` for a running
    build whose cancel was asked (queued or not), ``queued`` for one no worker has taken
    yet, else its status. The API says ``running`` for both; the CLI and the web page
    (``shownStatus`` in api/static/farm.js, which follows this rule) show them so."""
    if record.get("status") == Status.RUNNING.value and record.get("cancel-requested"):
        return CANCELLING
    return Phase.QUEUED.value if is_queued(record) else record.get("status")


@dataclass(frozen=True)
class Step:
    """One step of every build.

    ``name`` is the Celery task ``binder.<name>`` and the module
    ``workers/phases/<name>.py`` whose ``run`` does the work; ``state`` is the
    record's phase while it runs; a ``same_host`` step runs on the Docker
    host of the step before it (which holds the checkout and the image).
    """

    name: str
    state: Phase
    same_host: bool = True


#: The phases of a build before its push: an attempt that ends in one of them pushed no
#: image (``build_store.ended_image``).
BEFORE_PUSH = frozenset({Phase.QUEUED, Phase.FETCHING, Phase.DETECTING, Phase.BUILDING})

#: The steps of a build, in order: the one list the tasks and the chain are made from.
STEPS: tuple[Step, ...] = (
    Step("fetch", Phase.FETCHING, same_host=False),
    Step("detect", Phase.DETECTING),
    Step("build", Phase.BUILDING),
    Step("push", Phase.PUSHING),
    Step("template", Phase.REGISTERING),
)


class PhaseTimes(TypedDict, total=False):
    start: dt.datetime
    end: dt.datetime
    worker: str


class Lease(TypedDict, total=False):
    """Who runs a build: the worker process of its current phase and its host.

    Between phases ``worker`` is None, ``handed_by`` the process that ended
    the last phase and ``handed_at`` when (see ``common/leases.py``). A phase
    a stopping worker handed back has ``worker`` None and ``released`` its
    name (``build_store.release_phase``). A next phase the reaper sent, the
    worker that ended the last one having died first, has ``resent_at``.
    """

    worker: str | None
    host: str
    attempt: int
    since: dt.datetime
    handed_by: str
    handed_at: dt.datetime
    released: str
    #: When the farm sent the next phase, its worker having died before it did.
    resent_at: dt.datetime
    #: The Celery task whose claim took the current phase, and its try
    #: (``build_store.TaskTry``).
    task: str
    retries: int


class ImageFacts(TypedDict):
    """What the build phase learned of the image it built (``workers/built_image.py``)."""

    cmd: list[str]  # the image's own CMD
    interfaces: list[str]  # the interfaces its label names
    #: What decides whether a verification may stand for it
    #: (``workers/verification_reuse.image_shape``); None when none may.
    reuse_shape: dict[str, Any] | None


class BuildRecord(TypedDict, total=False):
    """A build's current attempt in ``builds`` (archived attempts in ``attempts``)."""

    _id: Any
    build_id: str
    name: str
    display_name: str
    provider: str
    repository: str  # normalised by its provider
    ref: str | None
    spec: str  # the canonical spec the fetch phase reads again
    force: bool
    status: str  # a Status
    phase: str  # a Phase
    start_time: dt.datetime
    end_time: dt.datetime | None
    attempt_start: dt.datetime
    attempt: int
    lease: Lease | None
    heartbeat: dt.datetime | None
    enqueued: bool
    enqueued_at: dt.datetime
    broker_epoch: str | None
    #: The attempt (``attempt``) and last line number (``line``) of the log as the phase
    #: that handed the build on left it (``build_store.carried_log_end``).
    log_end: dict[str, int]
    cancel_requested: bool
    error: str | None
    #: A failed build's ``FailureCause`` (absent on other builds, and on failed ones
    #: recorded before causes were kept).
    cause: str
    #: What the user can do about ``error`` (a failure's suggestions); empty otherwise.
    suggestions: list[str]
    commit: str | None  # the commit SHA of Git content, else None
    resolved_commit: str  # the commit the API resolved the request's ref to (Git only)
    content_id: str  # the image tag: a commit SHA or an archive record's digest
    #: The image the build pushed (a completed build's: its image, or a cache hit's, the
    #: one it reused); while it runs, from its fetch on, the image it will push. None
    #: for an attempt that ended before it pushed (``planned_image``) and for one whose
    #: image failed verification (``rejected_image``).
    image_name: str | None
    image_source: str | None
    #: An attempt's that ended failed or cancelled before it pushed anything: the image
    #: it would have pushed (its image_name is None). Its tag may hold another build's
    #: image (a forced rebuild's predecessor) or none at all.
    planned_image: str
    #: A failed build's: the image it pushed and verification rejected (its image_name is
    #: None); removed from the registry unless a completed build names it (then its tag
    #: names that build's image again, ``predecessor``).
    rejected_image: str
    #: A push phase's, when its tag was a completed build's (a forced rebuild's): the
    #: ``image``, its manifest ``digest`` before the push and what ``named_by`` it;
    #: a rejected image, or one its build stopped before verifying, gives the tag back
    #: to that manifest.
    predecessor: dict[str, str]
    #: The image a push phase pushes, or pushed, with no verdict of verification on it
    #: yet; ``None`` once there is one, or once the phase withdrew it. Still set when the
    #: build ends (its worker died after the push), the reaper withdraws it
    #: (``workers/unverified.py``).
    unverified_image: str | None
    #: What the reaper withdrew (``image``) and when (``at``): see ``unverified_image``.
    unverified_withdrawn: dict[str, Any]
    image_id: str
    image_facts: ImageFacts  # the build phase's, for the phases after it
    #: The image whose layers the build phase may reuse, as fetch found it (see
    #: ``workers/phases/build.py``); absent when fetch read no template.
    cache_from: str | None
    config: str | None
    config_files: list[str]
    buildpack: str
    binder_yml: dict[str, Any]
    worker: str | None
    workers: list[str]
    cached: bool
    built_by: str  # a cache hit's: the build id of the build that made its image
    pushed_bytes: int  # bytes of layers the push phase sent (metrics)
    image_pruned: dt.datetime  # when retention deleted the image from the registry
    log_pruned: dt.datetime  # when retention deleted the stored log
    phases: dict[str, PhaseTimes]
    lost: dict[str, Any]
    deliveries: dict[str, dict[str, int]]  # attempt -> phase -> claims
    handed_back: dict[str, dict[str, int]]  # attempt -> phase -> hand-backs on a stop


class TemplateRecord(TypedDict, total=False):
    """A deployable template in ``templates``, one per build name."""

    _id: Any
    name: str
    image_name: str
    image_source: str
    provider: str | None
    repository: str
    ref: str | None
    commit: str | None
    content_id: str | None
    config: str | None
    port: int
    command: str | None
    services: list[dict[str, Any]]
    limits: dict[str, Any]
    hardware: dict[str, Any]
    interfaces: list[str]
    time_created: dt.datetime
    time_modified: dt.datetime
