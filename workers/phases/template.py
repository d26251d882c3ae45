"""Phase template ("registering"): verify the image, then write its template."""

from __future__ import annotations

import shlex
from typing import Any

from common import template_store
from common.config import Config
from workers.docker_engine import docker_client
from workers.phase_runner import COMPLETE, PhaseRun
from workers.verify import verify_image


def image_command(config: Config, image: str) -> str | None:
    """The image's own default command, as one shell-quoted string."""
    attrs = docker_client(config, timeout=60).images.get(image).attrs["Config"]
    argv = (attrs.get("Entrypoint") or []) + (attrs.get("Cmd") or [])
    return shlex.join(argv) if argv else None


def make_template(record: dict[str, Any], config: Config, command: str | None) -> dict[str, Any]:
    binder_yml = record.get("binder_yml") or {}
    limits = {"memory": config.default_memory, "cpu": config.default_cpu,
              **binder_yml.get("limits", {})}
    return {
        "name": record["name"],
        "image_name": record["image_name"],
        "image_source": record["image_name"],
        "repository": record["repository"],
        "commit": record["commit"],
        "config": record.get("config"),
        "port": binder_yml.get("port", config.default_port),
        "command": binder_yml.get("command", command),
        "services": binder_yml.get("services", []),
        "limits": limits,
        "hardware": binder_yml.get("hardware", {}),
    }


def run(context: PhaseRun) -> dict[str, Any]:
    record, config = context.record, context.config
    command = image_command(config, record["image_name"])
    template = make_template(record, config, command)
    if config.verify and not record.get("cached"):
        verify_image(config, record["image_name"], template["port"],
                     (record.get("binder_yml") or {}).get("command"), record["build_id"],
                     context.say, context.guard)
    template_store.save_template(template)
    context.say(f"template {record['name']} saved")
    return {COMPLETE: True, "image_source": record["image_name"]}
