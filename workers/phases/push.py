"""Phase push: send the image to the registry under its tag, verifying it meanwhile.

Verification (``workers/verify.py``) starts the image on this host while the
engine pushes it: neither waits for the other, and the phase ends when both
have succeeded. If the push fails first, the verification is left to end by
itself (it removes its container within ``BINDER_VERIFY_TIMEOUT``). If the
verification fails, the pushed image leaves the registry again
(``workers/image_rejection.py``).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from common.errors import BuildFailure
from workers import verification_reuse
from workers.docker_engine import docker_client
from workers.image_rejection import withdraw
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


def rejected(phase: PhaseRun, failure: BuildFailure) -> PhaseFailure:
    """The image, pushed, failed verification: its tag leaves the registry unless a
    completed build names it (``workers/image_rejection.py``), and the build fails
    with the image named as rejected, not as its image."""
    withdraw(phase.config, phase.record["name"], phase.image, phase.say)
    return PhaseFailure.of(failure, {"image_name": None, "rejected_image": phase.image})


def run(phase: PhaseRun) -> PhaseResult:
    image = phase.image
    if phase.record.get("cached"):
        return PhaseResult({"image_source": image})
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
                raise rejected(phase, exc) from exc
    finally:
        pool.shutdown(wait=False)
    return PhaseResult({"image_source": image, "pushed_bytes": pushed})
