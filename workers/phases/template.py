"""Phase template ("registering"): write the template of the pushed, verified image.

The image is verified beside the push (``workers/phases/push.py``), so this
phase only writes what both made true.
"""

from __future__ import annotations

import shlex

from common import template_store
from common.config import Config
from common.models import BuildRecord, TemplateRecord
from workers.docker_engine import docker_client
from workers.phase_runner import PhaseResult, PhaseRun


def image_command(config: Config, image: str) -> str | None:
    """The image's own default command, as one shell-quoted string."""
    attrs = docker_client(config, timeout=60).images.get(image).attrs["Config"]
    argv = (attrs.get("Entrypoint") or []) + (attrs.get("Cmd") or [])
    return shlex.join(argv) if argv else None


def serving_port(record: BuildRecord, config: Config) -> int:
    """The port the image serves on: .binder.yml's, else the farm's default."""
    return int((record.get("binder_yml") or {}).get("port", config.default_port))


def make_template(record: BuildRecord, image: str, config: Config,
                  command: str | None) -> TemplateRecord:
    binder_yml = record.get("binder_yml") or {}
    limits = {"memory": config.default_memory, "cpu": config.default_cpu,
              **binder_yml.get("limits", {})}
    return {
        "name": record["name"],
        "image_name": image,
        "image_source": image,
        "provider": record.get("provider"),
        "repository": record["repository"],
        "ref": record.get("ref"),
        "commit": record.get("commit"),
        "content_id": record.get("content_id"),
        "config": record.get("config"),
        "port": serving_port(record, config),
        "command": binder_yml.get("command", command),
        "services": binder_yml.get("services", []),
        "limits": limits,
        "hardware": binder_yml.get("hardware", {}),
    }


def run(phase: PhaseRun) -> PhaseResult:
    record, config = phase.record, phase.config
    command = image_command(config, phase.image)
    template = make_template(record, phase.image, config, command)
    template_store.save_template(template)
    phase.say(f"template {record['name']} saved")
    return PhaseResult({"image_source": phase.image}, complete=True)
