"""Phase push: send the image to the registry under its tag."""

from __future__ import annotations

from workers.docker_engine import docker_client
from workers.phase_runner import PhaseResult, PhaseRun
from workers.registry import push_image


def run(phase: PhaseRun) -> PhaseResult:
    image = phase.image
    if phase.record.get("cached"):
        return PhaseResult({"image_source": image})
    client = docker_client(phase.config, timeout=phase.config.push_timeout)
    phase.guard.on_abort(client.close)
    phase.say(f"pushing {image}")
    push_image(client, phase.config, image, on_status=phase.say, check=phase.guard.check)
    phase.say(f"pushed {image}")
    return PhaseResult({"image_source": image})
