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
name's template may name, and a launcher starts what they name. The push
moved that tag to the rejected image, so the push phase learns beforehand
which manifest the tag holds (``predecessor``) and the rejection puts that
manifest back under the tag (the registry keeps it by digest meanwhile: only
its garbage collection, run while nothing pushes, deletes untagged
manifests; the rejected one is left to it). A digest such a tag shares stays
too (deleting a manifest deletes every tag of it). What became of the tag is
said in the build's log; a tag that could not be deleted or restored is a
warning there and changes nothing else.

An image its build pushed but stopped before verifying (cancelled, timed out,
its worker stopping, the phase failing) is withdrawn the same way: the farm
never leaves an image it did not verify under a tag (``UNVERIFIED``). So is
one whose worker died before verification said yes or no, once the build
ended without it: the reaper withdraws it (``workers/unverified.py``), and
tries again later when the registry or the build database did not answer
(``Withdrawal.settled``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import requests

from common import build_store, template_store
from common.config import Config
from common.errors import BadDatabase, NoDatabase
from workers.registry import delete_tag, manifest_digest, restore_tag, split_image


def standing_for(name: str) -> dict[str, str]:
    """The images of build ``name`` that must stay in the registry, each with what
    names it: its completed builds' (``completed build ID``) and its template's."""
    standing = {image: f"completed build {maker}"
                for image, maker in build_store.completed_images(name).items()}
    template = template_store.find_template(name)
    if template and template.get("image_name"):
        standing.setdefault(template["image_name"], f"the template of {name}")
    return standing


@dataclass(frozen=True)
class Predecessor:
    """The image a tag held before a build pushed to it: its manifest digest, and what
    names it (``completed build ID``, ``the template of NAME``)."""

    digest: str
    named_by: str


@dataclass(frozen=True)
class Unwanted:
    """Why a pushed image leaves its tag, in the words of the build's log: ``image``
    names it, ``reason`` says why it goes."""

    image: str
    reason: str


@dataclass(frozen=True)
class Withdrawal:
    """What became of a withdrawn tag: ``gone`` when the registry no longer has it;
    ``settled`` unless the registry (a connection failure, a timeout, an error of its
    own) or the build database did not answer, when the tag may still hold the
    unwanted image and a later try may do better. A registry that refused outright
    (a ``4xx``: deletes not allowed, the earlier manifest gone) settles it: trying
    again would not change its answer."""

    gone: bool
    settled: bool = True


def _settles(exc: requests.RequestException) -> bool:
    """True when the registry's answer ``exc`` stands however often it is asked."""
    response = getattr(exc, "response", None)
    return response is not None and 400 <= response.status_code < 500


#: An image verification said no to.
REJECTED = Unwanted("the image that failed verification", "it failed verification")
#: An image whose build stopped before verification said yes or no.
UNVERIFIED = Unwanted("the unverified image", "it was not verified")


def predecessor(config: Config, name: str, image: str,
                say: Callable[[str], None]) -> Predecessor | None:
    """What the tag of ``image`` holds before build ``name`` pushes to it, when
    something stands for it (``standing_for``); ``None`` when nothing does or the
    registry has no such tag. Raises nothing: when it cannot be learned, a warning in
    the log says so and it is ``None``.

    The registry is asked first: most pushes make a new tag, which needs no look at
    what stands for it in the store."""
    failure: Exception | None = None
    try:
        digest = manifest_digest(config, image, timeout=10)
    except requests.RequestException as exc:
        digest, failure = None, exc
    else:
        if digest is None:
            return None
    try:
        standing = standing_for(name)
    except (NoDatabase, BadDatabase) as exc:
        failure = exc
    else:
        if image not in standing:
            return None  # nothing to get back, whatever the registry said
        if digest is not None:
            return Predecessor(digest, standing[image])
    say(f"warning: could not learn which image {image} holds before the push; if "
        f"verification fails, the tag keeps the image it rejected ({failure})")
    return None


def restore(config: Config, image: str, earlier: Predecessor,
            say: Callable[[str], None], unwanted: Unwanted = REJECTED) -> bool:
    """Put ``earlier`` back under the tag of ``image``, to which an ``unwanted`` image
    was pushed, and say so in the build's log. Raises nothing: a tag that could not be
    restored is a warning in the log. False when the registry did not answer (see
    ``Withdrawal.settled``)."""
    try:
        if manifest_digest(config, image, timeout=10) == earlier.digest:
            say(f"{image} stays in the registry as it was: {unwanted.image} is that of "
                f"{earlier.named_by} ({earlier.digest})")
            return True
        restore_tag(config, image, earlier.digest)
    except requests.RequestException as exc:
        say(f"warning: could not restore {image} to the image of {earlier.named_by} "
            f"({earlier.digest}): {exc}; the tag holds {unwanted.image}")
        return _settles(exc)
    say(f"restored {image} to the image of {earlier.named_by}")
    return True


def withdraw(config: Config, name: str, image: str, say: Callable[[str], None],
             earlier: Predecessor | None = None, unwanted: Unwanted = REJECTED) -> bool:
    """Delete the tag of ``image``, which build ``name`` pushed and verification
    rejected (or never ended for, ``UNVERIFIED``), unless something still stands for
    it: then put back ``earlier``, what the tag held before the push, when known. Say
    in the build's log what became of the tag. True when it is gone. Raises nothing:
    a tag left behind or not restored is a warning in the log."""
    return withdrawal(config, name, image, say, earlier, unwanted).gone


def withdrawal(config: Config, name: str, image: str, say: Callable[[str], None],
               earlier: Predecessor | None = None, unwanted: Unwanted = REJECTED) -> Withdrawal:
    """``withdraw``, saying also whether what became of the tag is settled."""
    try:
        standing = standing_for(name)
    except (NoDatabase, BadDatabase) as exc:
        say(f"warning: {image} stays in the registry: the build database could not "
            f"say whether a completed build names it ({exc})")
        if earlier is not None:
            restore(config, image, earlier, say, unwanted)
        return Withdrawal(gone=False, settled=False)
    if image in standing:
        if earlier is None:
            say(f"{image} stays in the registry: {standing[image]} names it")
            return Withdrawal(gone=False)
        return Withdrawal(gone=False, settled=restore(config, image, earlier, say, unwanted))
    registry, repository, _ = split_image(image)
    try:
        keep = {digest for other in standing if split_image(other)[:2] == (registry, repository)
                and (digest := manifest_digest(config, other, timeout=10))}
        gone = delete_tag(config, image, keep)
    except requests.RequestException as exc:
        say(f"warning: could not remove {image} from the registry ({unwanted.reason}): "
            f"{exc}")
        return Withdrawal(gone=False, settled=_settles(exc))
    if gone:
        say(f"removed {image} from the registry: {unwanted.reason}")
    else:
        say(f"warning: {image} stays in the registry: an image a completed build names has "
            "the same digest")
    return Withdrawal(gone=gone)
