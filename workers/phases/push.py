"""Phase push: send the image to the registry under its commit tag."""

from __future__ import annotations

from typing import Any

from common.errors import BuildFailure
from workers.docker_engine import docker_client
from workers.phase_runner import PhaseRun
from workers.registry import auth_config


def run(context: PhaseRun) -> dict[str, Any]:
    record = context.record
    image = record["image_name"]
    if record.get("cached"):
        return {"image_source": image}
    client = docker_client(context.config, timeout=context.config.push_timeout)
    context.guard.on_abort(client.close)
    repository, _, tag = image.rpartition(":")
    context.say(f"pushing {image}")
    last_status = ""
    for event in client.api.push(repository, tag=tag, stream=True, decode=True,
                                 auth_config=auth_config(context.config)):
        context.guard.check()
        if "error" in event:
            raise BuildFailure(f"The registry refused the image: {event['error']}",
                               suggestions=["Retry; operators: check BINDER_REGISTRY."])
        status = event.get("status", "")
        if status and status != last_status and "id" not in event:
            context.say(status)
        last_status = status
    context.say(f"pushed {image}")
    return {"image_source": image}
