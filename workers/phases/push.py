"""Phase push: send the image to the registry under its tag, verifying it meanwhile.

Verification (``workers/verify.py``) starts the image on this host while the
engine pushes it: neither waits for the other, and the phase ends when both
have succeeded. If the push fails first, the verification is left to end by
itself (it removes its container within ``BINDER_VERIFY_TIMEOUT``), and the
tag is withdrawn if the registry took the manifest all the same: the registry
moves the tag as the push's last step, before the engine says the push ended,
so a push stopped in that moment has put an unverified image there. If the
verification fails, the pushed image leaves the registry again
(``workers/image_rejection.py``), or, when its tag is a completed build's (a
forced rebuild pushes its predecessor's tag), the tag gets back the image it
held before the push. So it does when the phase stops after its push while
verification still runs (a cancel, the build's deadline, a stopping worker
handing the phase back, a failure of the farm): the phase ends as it would
have, but the tag holds no image the farm did not verify. A phase run again
pushes and verifies again. A phase that ends before the registry took the
image (refused, cut short) pushed nothing: the build names no image
(``PhaseRun.pushed``, ``build_store.ended_image``).

A phase whose worker dies after its push cannot withdraw anything, so the
record says beforehand which image awaits a verdict (``unverified_image``,
``awaiting_verdict``) and the phase clears it once verification said yes or
no, once it withdrew the image itself, or once its push stopped with the tag
as it found it. A build that ends with it still set (cancelled or failed
with nobody running its push, or a push whose tag the registry could not be
asked about) gets its tag withdrawn by the reaper (``workers/unverified.py``);
a build that starts again pushes and verifies again, and sets it again.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Final

import requests

from common import build_store
from common.errors import BadDatabase, BuildCancelled, BuildFailure, LeaseLost, NoDatabase
from workers import verification_reuse
from workers.built_image import facts
from workers.docker_engine import docker_client
from workers.guard import BuildTimedOut
from workers.image_rejection import UNVERIFIED, Predecessor, predecessor, withdraw
from workers.outages import engine_lost, registry_lost, watching
from workers.phase_runner import PhaseFailure, PhaseResult, PhaseRun
from workers.phases.template import launch_command, serving_port
from workers.registry import manifest_digest, push_image
from workers.stopping import WorkerStopping
from workers.verify import verify_image

log = logging.getLogger(__name__)


def verify(phase: PhaseRun) -> None:
    """Start the image as its template will and wait until it serves, unless a
    verification on this host stands for it (``workers/verification_reuse.py``)."""
    record, config = phase.record, phase.config
    image = facts(phase)
    port = serving_port(record, config)
    command = launch_command(record, config, image["cmd"])
    key = verification_reuse.key_for(config, record, phase.checkout, image["reuse_shape"],
                                     port, command, phase.say)
    if key is not None:
        earlier = verification_reuse.standing_verification(key)
        if earlier is not None:
            phase.say(f"verified: the image serves on port {port}, as the image of build "
                      f"{earlier['build']} did: it has the same layers but the repository's "
                      "files, which cannot change how it starts, and the same command")
            return
    verify_image(config, phase.image, port, command, record["build_id"], phase.say,
                 phase.guard)
    if key is not None:
        verification_reuse.remember(key, record["name"], phase.image)


def overwritten(phase: PhaseRun) -> Predecessor | None:
    """What the image's tag held before this build first pushed to it, when a
    completed build or the template names the tag (``image_rejection.predecessor``).

    Kept in the record (``predecessor``): a push phase run again after its push
    (a lost service, a dead worker, a later attempt) finds its own image under
    the tag and must not take it for the one to put back.
    """
    stored = phase.record.get("predecessor")
    if stored is not None and stored.get("image") == phase.image:
        return Predecessor(stored["digest"], stored["named_by"])
    found = predecessor(phase.config, phase.record["name"], phase.image, phase.say)
    if found is not None:
        phase.say(f"{phase.image} holds the image of {found.named_by} ({found.digest}), "
                  "which it gets back if this one fails verification")
        fields = {"image": phase.image, **asdict(found)}
        build_store.set_running(phase.build_id, phase.attempt, {"predecessor": fields})
        phase.record["predecessor"] = fields
    return found


#: The record's field naming the image a push phase pushes, or pushed, with no verdict
#: on it yet; ``None`` once there is one (``workers/unverified.py`` reads it).
AWAITING: Final = "unverified_image"
#: The changes that say the image awaits no verdict any more.
ANSWERED = {AWAITING: None}


def awaiting_verdict(phase: PhaseRun) -> None:
    """Record, before the push, that the image awaits a verdict: should this process
    die before verification says yes or no, the image is withdrawn once the build
    ends without it (``workers/unverified.py``). Raises what ``set_running`` does:
    a phase that cannot say so does not push."""
    build_store.set_running(phase.build_id, phase.attempt, {AWAITING: phase.image})


def answered(phase: PhaseRun) -> None:
    """The image awaits no verdict any more (the phase withdrew it, or never moved its
    tag): clear ``AWAITING``, if the store takes it. If not, the reaper withdraws
    the tag again once the build ended, which finds it withdrawn."""
    with contextlib.suppress(LeaseLost, NoDatabase, BadDatabase):
        build_store.set_running(phase.build_id, phase.attempt, dict(ANSWERED))


def rejected(phase: PhaseRun, failure: BuildFailure, earlier: Predecessor | None) \
        -> PhaseFailure:
    """The image, pushed, failed verification: its tag leaves the registry unless a
    completed build names it, and then gets back ``earlier``, the image it held
    (``workers/image_rejection.py``); the build fails with the image named as
    rejected, not as its image."""
    withdraw(phase.config, phase.record["name"], phase.image, phase.say, earlier)
    return PhaseFailure.of(failure, {"image_name": None, "rejected_image": phase.image,
                                     **ANSWERED})


def stopped(phase: PhaseRun, reason: Exception, earlier: Predecessor | None) -> None:
    """The phase stops after its push, before verification said yes or no, for
    ``reason``: the tag is withdrawn as a rejected one's is, and the log says why.
    The phase still ends for ``reason`` (cancelled, timed out, handed back, failed);
    its record keeps the image it pushed as ``image_name``: no verdict makes it a
    ``rejected_image``. (A build that stops before its push names none, only a
    ``planned_image``: ``build_store.ended_image``.)"""
    phase.say(f"{phase.image} was pushed but not verified: {how_it_stopped(reason)}")
    try:
        withdraw(phase.config, phase.record["name"], phase.image, phase.say, earlier,
                 UNVERIFIED)
    except Exception as exc:  # the phase ends for its reason, whatever became of the tag
        log.exception("could not withdraw %s", phase.image)
        phase.say(f"warning: could not withdraw {phase.image} from its tag: {exc}")
    answered(phase)


def cut_short(phase: PhaseRun, reason: Exception, earlier: Predecessor | None) -> None:
    """The push stopped for ``reason`` before the engine said it ended. The registry may
    have taken its manifest all the same (it moves the tag as the push's last step):
    when the tag holds anything but what it held before the push, that image is
    withdrawn as ``stopped`` withdraws one pushed and never verified."""
    try:
        digest = manifest_digest(phase.config, phase.image, timeout=10)
    except requests.RequestException as exc:
        # The record still says the image awaits a verdict: once the build has ended,
        # the reaper asks the registry again and withdraws the image if it is there.
        phase.say(f"warning: could not learn whether {phase.image} reached the registry "
                  f"before the push stopped: {exc}")
        return
    if digest is None or (earlier is not None and digest == earlier.digest):
        answered(phase)  # the tag is as the push found it
        return
    phase.pushed = True  # the build ends naming the image it pushed, as one stopped later does
    stopped(phase, reason, earlier)


def how_it_stopped(reason: Exception) -> str:
    """What stopped the phase, as the build's log says it."""
    if isinstance(reason, BuildCancelled):
        return "the build was cancelled"
    if isinstance(reason, BuildTimedOut):
        return "the build timed out"
    if isinstance(reason, WorkerStopping):
        return "its worker is stopping; the next worker pushes and verifies it again"
    return f"the phase stopped ({type(reason).__name__})"


def verified(phase: PhaseRun, verifying: Future[None], earlier: Predecessor | None) -> None:
    """Wait until ``verifying`` says the pushed image serves; withdraw its tag when
    it says no (``rejected``) or the phase stops first (``stopped``).

    What the guard stopped the phase for wins over what verification raised meanwhile
    (an image whose container the stop removed seems to exit): a cancelled build ends
    cancelled. One whose lease is lost leaves the tag alone: another run of the build
    may be pushing to it (if none is, because the build ended, the reaper withdraws the
    image its record says awaits a verdict).
    """
    try:
        verifying.result()
    except Exception as exc:
        reason = phase.guard.reason
        if reason is None and isinstance(exc, BuildFailure):
            raise rejected(phase, exc, earlier) from exc
        ending = reason if isinstance(reason, Exception) else exc
        if not isinstance(ending, LeaseLost):
            stopped(phase, ending, earlier)
        if ending is exc:
            raise
        raise ending from exc


def run(phase: PhaseRun) -> PhaseResult:
    image = phase.image
    if phase.record.get("cached"):
        return PhaseResult({"image_source": image})
    phase.pushed = False  # until the registry took the image: a build ending now pushed none
    earlier = overwritten(phase) if phase.config.verify else None
    if phase.config.verify:
        awaiting_verdict(phase)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
    verifying: Future[None] | None = None
    try:
        if phase.config.verify:
            verifying = pool.submit(verify, phase)
        client = docker_client(phase.config, timeout=phase.config.push_timeout)
        phase.guard.on_abort(client.close)
        phase.say(f"pushing {image}")
        try:
            with watching(phase.config, phase.guard, engine_lost, registry_lost):
                pushed = push_image(client, phase.config, image, on_status=phase.say,
                                    check=phase.guard.raise_if_stopped)
        except Exception as exc:
            reason = phase.guard.reason
            ending = reason if isinstance(reason, Exception) else exc
            # A lost lease leaves the tag alone: another run of the build may push to it.
            if verifying is not None and not isinstance(ending, LeaseLost):
                cut_short(phase, ending, earlier)
            raise
        phase.pushed = True
        phase.say(f"pushed {image} ({pushed / (1024 * 1024):.1f} MiB of new layers)")
        if verifying is not None:
            verified(phase, verifying, earlier)
            # Now, not only with the phase's end: a build cancelled from here on keeps
            # its verified image.
            answered(phase)
    finally:
        pool.shutdown(wait=False)
    answers = ANSWERED if verifying is not None else {}
    return PhaseResult({"image_source": image, "pushed_bytes": pushed, **answers})
