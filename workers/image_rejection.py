"""An image that failed verification leaves the farm's registry.

The push phase pushes the image while verification runs
(``workers/phases/push.py``), so when verification says no the image is
already under its tag, where a user pulling the tag or an operator listing
the registry would take it for one the farm made. The phase then deletes
the tag (by its manifest digest, ``workers/registry.delete_tag``) and ends
the build failed with the image's name as ``rejected_image``, naming no
image of its own (``image_name`` is ``None``).

A tag stays when something still stands for it: the same commit on the
same base and recipe is the same tag, which an earlier completed build of
the name (a forced rebuild's predecessor, or the hits it answered) or the
name's template may name, and a launcher starts what they name. A digest
such a tag shares stays too (deleting a manifest deletes every tag of it).
What became of the tag is said in the build's log; a tag that could not be
deleted is a warning there and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from common import build_store, template_store
from common.config import Config
from common.errors import BadDatabase, NoDatabase
from workers.registry import delete_tag, manifest_digest, split_image


def standing_for(name: str) -> dict[str, str]:
    """The images of build ``name`` that must stay in the registry, each with what
    names it: its completed builds' (``completed build ID``) and its template's."""
    standing = {image: f"completed build {maker}"
                for image, maker in build_store.completed_images(name).items()}
    template = template_store.find_template(name)
    if template and template.get("image_name"):
        standing.setdefault(template["image_name"], f"the template of {name}")
    return standing


def withdraw(config: Config, name: str, image: str, say: Callable[[str], None]) -> bool:
    """Delete the tag of ``image``, which build ``name`` pushed and verification
    rejected, unless something still stands for it; say in the build's log what
    became of it. True when the tag is gone. Raises nothing: a tag left behind is a
    warning in the log."""
    try:
        standing = standing_for(name)
    except (NoDatabase, BadDatabase) as exc:
        say(f"warning: {image} stays in the registry: the build database could not "
            f"say whether a completed build names it ({exc})")
        return False
    if image in standing:
        say(f"{image} stays in the registry: {standing[image]} names it")
        return False
    registry, repository, _ = split_image(image)
    try:
        keep = {digest for other in standing if split_image(other)[:2] == (registry, repository)
                and (digest := manifest_digest(config, other, timeout=10))}
        gone = delete_tag(config, image, keep)
    except requests.RequestException as exc:
        say(f"warning: could not remove {image}, which failed verification, from the "
            f"registry: {exc}")
        return False
    if gone:
        say(f"removed {image} from the registry: it failed verification")
    else:
        say(f"warning: {image} stays in the registry: an image a completed build names has "
            "the same digest")
    return gone
