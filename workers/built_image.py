"""What the phases after the build need of the image it built, read from the engine once.

The build phase describes its image right after building it (``read_facts``:
one inspection, and the image's history when a verification may stand for it,
``workers/verification_reuse.py``) and keeps what it learned in the record
(``image_facts``). The push phase (the command verification runs, the reuse
key) and the template phase (the template's command and interfaces) take the
facts from there (``facts``), also when they run again after their worker
died: the record outlives the process. A record without them (its build phase
ran before the record kept them) has them read from the engine again.

A repository's own Dockerfile sets the CMD and the interfaces label, and the
template (kept, and shown in API answers) holds them: ``image_facts`` fails
the build when either is larger than a template holds.
"""

from __future__ import annotations

import shlex
from typing import Any, Final

from common.config import Config
from common.errors import BuildFailure
from common.models import ImageFacts
from workers.binder_yml import MAX_COMMAND_CHARS
from workers.docker_engine import docker_client
from workers.guard import PhaseGuard
from workers.outages import engine_lost, watching
from workers.phase_runner import PhaseRun
from workers.verification_reuse import image_shape, may_reuse

INTERFACES_LABEL = "org.binder-build.interfaces"


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


#: The record's field holding the built image's facts.
FIELD: Final = "image_facts"


def read_facts(config: Config, guard: PhaseGuard, image: str,
               buildpack: str | None) -> ImageFacts:
    """The facts of the engine's ``image``, built with ``buildpack``.

    Raises ``BuildFailure`` (the repository's) when its CMD or interfaces label
    is larger than a template holds (``image_facts``). An engine that does not
    answer (stopped, or frozen until the client's timeout) is ``ServiceLost``:
    the phase waits for it and runs again.
    """
    with watching(config, guard, engine_lost):
        described = docker_client(config, timeout=60).images.get(image)
        # The history is one more request to the engine: only for an image whose
        # verification may be carried over.
        history = described.history() if config.verify and may_reuse(config, buildpack) \
            else None
    cmd, interfaces = image_facts(described.attrs)
    shape = image_shape(config, described.attrs, history) if history is not None else None
    return {"cmd": cmd, "interfaces": interfaces, "reuse_shape": shape}


def facts(phase: PhaseRun) -> ImageFacts:
    """The facts of the image ``phase``'s build built: the record's, else the engine's."""
    stored = phase.record.get(FIELD)
    if stored is not None:
        return stored
    found = read_facts(phase.config, phase.guard, phase.image, phase.record.get("buildpack"))
    phase.record[FIELD] = found
    return found
