"""Phase template ("registering"): write the template of the pushed, verified image.

The image is verified beside the push (``workers/phases/push.py``), so this
phase only writes what both made true.

The template's ``command`` is what a launcher runs as the image's command
(Docker's CMD; the image's entrypoint, such as a repository's ``start``,
stays and wraps it): ``.binder.yml``'s command, else the image's own CMD,
else JupyterLab's server on the template's port. ``interfaces`` lists the
user interfaces the image says it serves (its
``org.binder-build.interfaces`` label, set by the base image).

Both come from the build phase's description of the image, kept in the
record (``workers/built_image.py``), which bounds them.
"""

from __future__ import annotations

import shlex
from typing import Any

from common import template_store
from common.config import Config
from common.models import BuildRecord, TemplateRecord
from workers import built_image
from workers.buildpacks.compose import PORT, default_command
from workers.phase_runner import PhaseResult, PhaseRun

#: Commands of images that name no command of their own (the Debian root's shell).
NO_COMMAND: tuple[list[str], ...] = ([], ["/bin/bash"], ["bash"], ["/bin/sh"], ["sh"])


def template_command(image_cmd: list[str], port: int) -> str:
    """The image's own command, or JupyterLab's server on ``port``."""
    if image_cmd in NO_COMMAND or image_cmd == default_command(PORT):
        return shlex.join(default_command(port))
    return shlex.join(image_cmd)


def serving_port(record: BuildRecord, config: Config) -> int:
    """The port the image serves on: .binder.yml's, else the farm's default."""
    return int((record.get("binder_yml") or {}).get("port", config.default_port))


def launch_command(record: BuildRecord, config: Config, image_cmd: list[str]) -> str:
    """The command the template gives launchers, and verification runs."""
    binder_yml = record.get("binder_yml") or {}
    return str(binder_yml.get("command")
               or template_command(image_cmd, serving_port(record, config)))


def template_limits(binder_yml: dict[str, Any], config: Config) -> dict[str, Any]:
    """The template's limits: ``memory`` a size string (``"2G"``), ``cpu`` a number of
    CPUs (``1.0``, ``0.5``), whether they come from the farm's defaults or from
    ``.binder.yml`` (which may spell the CPUs as a string: ``cpu: "2"``)."""
    limits = {"memory": config.default_memory, "cpu": config.default_cpu,
              **binder_yml.get("limits", {})}
    return {"memory": str(limits["memory"]), "cpu": float(limits["cpu"])}


def make_template(record: BuildRecord, image: str, config: Config,
                  image_cmd: list[str], interfaces: list[str] | None = None) -> TemplateRecord:
    binder_yml = record.get("binder_yml") or {}
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
        "command": launch_command(record, config, image_cmd),
        "services": binder_yml.get("services", []),
        "limits": template_limits(binder_yml, config),
        "hardware": binder_yml.get("hardware", {}),
        "interfaces": interfaces or [],
    }


def run(phase: PhaseRun) -> PhaseResult:
    record, config = phase.record, phase.config
    image = built_image.facts(phase)
    template = make_template(record, phase.image, config, image["cmd"], image["interfaces"])
    template_store.save_template(template)
    phase.say(f"template {record['name']} saved")
    return PhaseResult({"image_source": phase.image}, complete=True)
