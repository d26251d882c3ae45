"""Phase push: send the image to the registry under its tag, verifying it meanwhile.

Verification (``workers/verify.py``) starts the image on this host while the
engine pushes it: neither waits for the other, and the phase ends when both
have succeeded. If the push fails first, the verification is left to end by
itself (it removes its container within ``BINDER_VERIFY_TIMEOUT``). If the
verification fails, the pushed image leaves the registry again
(``workers/image_rejection.py``), or, when its tag is a completed build's (a
forced rebuild pushes its predecessor's tag), the tag gets back the image it
held before the push.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict

from common import build_store
from common.errors import BuildFailure
from workers import verification_reuse
from workers.docker_engine import docker_client
from workers.image_rejection import Predecessor, predecessor, withdraw
from workers.outages import engine_lost, registry_lost, watching
from workers.phase_runner import PhaseFailure, PhaseResult, PhaseRun
from workers.phases.template import image_facts, launch_command, serving_port
from workers.registry import push_image
from workers.verify import verify_image


def verify(phase: PhaseRun) -> None:
    """Start the image as its template will and wait until it serves, unless a
    verification on this host stands for it (``workers/verification_reuse.py``)."""
    record, config = phase.record, phase.config
    image = docker_client(config, timeout=60).images.get(phase.image)
    image_cmd, _ = image_facts(image.attrs)
    port = serving_port(record, config)
    command = launch_command(record, config, image_cmd)
    key = verification_reuse.key_for(config, record, phase.checkout, image, port, command,
                                     phase.say)
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
        build_store.update_running(phase.build_id, phase.attempt, {"predecessor": fields})
        phase.record["predecessor"] = fields
    return found


def rejected(phase: PhaseRun, failure: BuildFailure, earlier: Predecessor | None) \
        -> PhaseFailure:
    """The image, pushed, failed verification: its tag leaves the registry unless a
    completed build names it, and then gets back ``earlier``, the image it held
    (``workers/image_rejection.py``); the build fails with the image named as
    rejected, not as its image."""
    withdraw(phase.config, phase.record["name"], phase.image, phase.say, earlier)
    return PhaseFailure.of(failure, {"image_name": None, "rejected_image": phase.image})


def run(phase: PhaseRun) -> PhaseResult:
    image = phase.image
    if phase.record.get("cached"):
        return PhaseResult({"image_source": image})
    earlier = overwritten(phase) if phase.config.verify else None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
    verifying: Future[None] | None = None
    try:
        if phase.config.verify:
            verifying = pool.submit(verify, phase)
        client = docker_client(phase.config, timeout=phase.config.push_timeout)
        phase.guard.on_abort(client.close)
        phase.say(f"pushing {image}")
        with watching(phase.config, phase.guard, engine_lost, registry_lost):
            pushed = push_image(client, phase.config, image, on_status=phase.say,
                                check=phase.guard.raise_if_stopped)
        phase.say(f"pushed {image} ({pushed / (1024 * 1024):.1f} MiB of new layers)")
        if verifying is not None:
            try:
                verifying.result()
            except BuildFailure as exc:
                raise rejected(phase, exc, earlier) from exc
    finally:
        pool.shutdown(wait=False)
    return PhaseResult({"image_source": image, "pushed_bytes": pushed})
