"""Phase template ("registering"): write the template of the pushed, verified image.

The image is verified beside the push (``workers/phases/push.py``), so this
phase only writes what both made true.

The template's ``command`` is what a launcher runs as the image's command
(Docker's CMD; the image's entrypoint, such as a repository's ``start``,
stays and wraps it): ``.binder.yml``'s command, else the image's own CMD,
else JupyterLab's server on the template's port. ``interfaces`` lists the
user interfaces the image says it serves (its
``org.binder-build.interfaces`` label, set by the base image).

A repository's own Dockerfile sets both the CMD and the label, and the
template (kept, and shown in API answers) holds them: ``image_facts`` fails
the build when either is larger than a template holds.
"""

from __future__ import annotations

import shlex
from typing import Any

from common import template_store
from common.config import Config
from common.errors import BuildFailure
from common.models import BuildRecord, TemplateRecord
from workers.binder_yml import MAX_COMMAND_CHARS
from workers.buildpacks.compose import PORT, default_command
from workers.docker_engine import docker_client
from workers.guard import PhaseGuard
from workers.outages import engine_lost, watching
from workers.phase_runner import PhaseResult, PhaseRun

INTERFACES_LABEL = "org.binder-build.interfaces"
#: Commands of images that name no command of their own (the Debian root's shell).
NO_COMMAND: tuple[list[str], ...] = ([], ["/bin/bash"], ["bash"], ["/bin/sh"], ["sh"])


#: The most words of the image's CMD a template takes (its length is ``MAX_COMMAND_CHARS``).
MAX_COMMAND_WORDS = 256
#: The most interfaces the label may name, and the longest name.
MAX_INTERFACES = 10
MAX_INTERFACE_CHARS = 32


def image_facts(image_attrs: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The image's own CMD and the interfaces its label names, from the engine's
    description of it.

    Raises ``BuildFailure`` (the repository's) when the CMD has more than
    ``MAX_COMMAND_WORDS`` words or, written as a shell command, more than
    ``MAX_COMMAND_CHARS`` characters, or when the label names more than
    ``MAX_INTERFACES`` interfaces or one longer than ``MAX_INTERFACE_CHARS``.
    """
    attrs = image_attrs["Config"]
    labels = attrs.get("Labels") or {}
    cmd = [str(word) for word in attrs.get("Cmd") or []]
    interfaces = [name.strip() for name in str(labels.get(INTERFACES_LABEL, "")).split(",")
                  if name.strip()]
    check_command(cmd)
    check_interfaces(interfaces)
    return cmd, interfaces


def check_command(cmd: list[str]) -> None:
    """Fail the build when the image's CMD is larger than a template's command may be."""
    shorten = ["Shorten the CMD of the repository's Dockerfile: a template's command has "
               f"at most {MAX_COMMAND_WORDS} words and {MAX_COMMAND_CHARS} characters. "
               "A longer command belongs in a script the CMD runs."]
    if len(cmd) > MAX_COMMAND_WORDS:
        raise BuildFailure(f"the image's CMD has {len(cmd)} words; a template's command has "
                           f"at most {MAX_COMMAND_WORDS} words", shorten)
    length = len(shlex.join(cmd))
    if length > MAX_COMMAND_CHARS:
        raise BuildFailure(f"the image's CMD is {length} characters long as a shell command; "
                           f"a template's command has at most {MAX_COMMAND_CHARS} characters",
                           shorten)


def check_interfaces(interfaces: list[str]) -> None:
    """Fail the build when the interfaces label names more, or longer, interfaces than
    a template holds."""
    shorten = [f"Name at most {MAX_INTERFACES} interfaces of at most {MAX_INTERFACE_CHARS} "
               f"characters each in the image's {INTERFACES_LABEL} label (commas between "
               "them), or leave the label as the base image sets it."]
    if len(interfaces) > MAX_INTERFACES:
        raise BuildFailure(f"the image's {INTERFACES_LABEL} label names {len(interfaces)} "
                           f"interfaces; a template holds at most {MAX_INTERFACES}", shorten)
    longest = max(map(len, interfaces), default=0)
    if longest > MAX_INTERFACE_CHARS:
        raise BuildFailure(f"the image's {INTERFACES_LABEL} label names an interface of "
                           f"{longest} characters; a template's interface names have at most "
                           f"{MAX_INTERFACE_CHARS} characters", shorten)


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


def read_image_facts(config: Config, guard: PhaseGuard,
                     image: str) -> tuple[list[str], list[str]]:
    """``image_facts`` of ``image`` as this worker's engine describes it. An engine
    that does not answer (stopped, or frozen until the client's timeout) is
    ``ServiceLost``: the phase waits for it and runs again."""
    with watching(config, guard, engine_lost):
        attrs = docker_client(config, timeout=60).images.get(image).attrs
    return image_facts(attrs)


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
    image_cmd, interfaces = read_image_facts(config, phase.guard, phase.image)
    template = make_template(record, phase.image, config, image_cmd, interfaces)
    template_store.save_template(template)
    phase.say(f"template {record['name']} saved")
    return PhaseResult({"image_source": phase.image}, complete=True)
