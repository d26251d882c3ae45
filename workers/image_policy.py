"""Which images a repository's Dockerfile may pull (``BINDER_ALLOWED_BASE_IMAGES``).

Image names are compared as Docker resolves them, not as written:
``debian``, ``docker.io/library/debian`` and ``index.docker.io/library/debian:latest``
are one image. An allowed entry without a tag or digest allows every tag
and digest of its repository; ``NAME:TAG`` allows that tag only (not a
digest, which could name any manifest of the repository); ``NAME@DIGEST``
allows that digest only. An empty list allows every image.

Whatever the list, two kinds of image are refused unless they are the
farm's own (its base and root images, any tag: :class:`FarmImages`) or an
allowed entry covers them:

* any other image on the farm's registry: the engine pulls with the
  registry's login, and the images built from other repositories, private
  ones too, are there;
* an image on a registry written as a loopback, private or link-local
  address (in any spelling: ``127.1``, ``[::1]``, ``0x7f000001``), as
  ``localhost`` (or ``*.localhost``), or as a name that resolves to such an
  address (any of its addresses) or does not resolve: the engine pulls it
  itself, from the host's network (plain http for loopback), so a
  Dockerfile would reach the host's services whatever network builds run
  on. Docker Hub (``docker.io``, the default) is not looked up.

The engine looks a name up again when it pulls, so a name whose answer
changes in between (DNS rebinding) is not caught here: keep the engines'
hosts from reaching what builds must not (README, Production).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from common.addresses import Resolver, UnknownHost, leads_inward, resolve_host, split_host_port
from common.errors import BuildFailure
from workers.dockerfile_parser import DockerfileError
from workers.dockerfile_parser.images import ImageUse, pulled_images
from workers.repo_yaml import shorten

DEFAULT_DOMAIN = "docker.io"
NAME_MAX = 255
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN_COMPONENT = re.compile(r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$")
_IPV6_HOST = re.compile(r"^\[[a-fA-F0-9:]+\]$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")


class InvalidReference(ValueError):
    """Not an image reference Docker accepts."""


@dataclass(frozen=True)
class ImageReference:
    """A normalised image reference (``docker.io/library/debian:latest``)."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Normalise as Docker's ``ParseNormalizedNamed`` does; ``InvalidReference`` if invalid."""
    if len(text) > 1024:
        raise InvalidReference("it is too long")
    if _IMAGE_ID.match(text):
        raise InvalidReference("an image id cannot be pulled by name")
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidReference("its digest is not valid")
    tag = None
    last_colon, last_slash = name.rfind(":"), name.rfind("/")
    if last_colon > last_slash:
        name, tag = name[:last_colon], name[last_colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference("its tag is not valid")
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"
                     and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
        _check_domain(domain)
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"library/{remainder}"
    if remainder.lower() != remainder:
        raise InvalidReference("repository names must be lower case")
    if not all(_PATH_COMPONENT.match(part) for part in remainder.split("/")):
        raise InvalidReference("its repository name is not valid")
    if len(f"{domain}/{remainder}") > NAME_MAX:
        raise InvalidReference("its name is too long")
    if tag is None and not digest:
        tag = "latest"
    return ImageReference(domain, remainder, tag, digest or None)


def _check_domain(domain: str) -> None:
    host, port = domain, ""
    if ("]:" in domain) if domain.startswith("[") else (":" in domain):
        host, _, port = domain.rpartition(":")
    if port and not port.isdigit():
        raise InvalidReference("its registry port is not a number")
    if _IPV6_HOST.match(host):
        return
    if not all(_DOMAIN_COMPONENT.match(part) for part in host.split(".")):
        raise InvalidReference("its registry host is not valid")


@dataclass(frozen=True)
class AllowedImage:
    """One entry of the allowed list and what it covers."""

    written: str
    reference: ImageReference
    any_tag: bool  # written without tag or digest

    @classmethod
    def parse(cls, entry: str) -> AllowedImage:
        written = entry.strip()
        last = written.rsplit("/", 1)[-1]
        return cls(written, parse_reference(written), ":" not in last and "@" not in last)

    def covers(self, image: ImageReference) -> bool:
        if image.repository != self.reference.repository:
            return False
        if self.any_tag:
            return True
        if self.reference.digest:
            return image.digest == self.reference.digest
        return image.digest is None and image.tag == self.reference.tag


def allowed_images(entries: Iterable[str]) -> list[AllowedImage]:
    """The allowed list, parsed; ``BuildFailure`` names an entry that is no image name."""
    result = []
    for entry in entries:
        try:
            result.append(AllowedImage.parse(entry))
        except InvalidReference as exc:
            raise BuildFailure(
                f"This farm's BINDER_ALLOWED_BASE_IMAGES holds {shorten(entry)!r}, which is not "
                f"an image name ({exc}).",
                suggestions=["Operators: fix BINDER_ALLOWED_BASE_IMAGES."]) from None
    return result


def is_internal_registry(domain: str, resolve: Resolver = resolve_host) -> bool:
    """True for a registry written as ``localhost`` (or ``*.localhost``), as a non-public
    address literal, or as a name ``resolve`` finds a non-public address of; a name that
    does not resolve raises ``UnknownHost``. Docker Hub is not looked up."""
    host, port = split_host_port(domain)
    if host == DEFAULT_DOMAIN:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return leads_inward(host, port or 443, resolve)


@dataclass(frozen=True)
class FarmImages:
    """The farm's registry (``host:port``, pulled from with its login) and the farm's own
    images (base and root, wherever they are), whose every tag a Dockerfile may pull."""

    registry: str = ""
    images: tuple[str, ...] = ()

    def owns(self, image: ImageReference) -> bool:
        return any(image.repository == own.repository for own in self._references())

    def _references(self) -> list[ImageReference]:
        references = []
        for name in self.images:
            try:
                references.append(parse_reference(name))
            except InvalidReference:
                continue  # not pullable, so nothing to allow
        return references


def check_registry(use: ImageUse, image: ImageReference, farm: FarmImages,
                   resolve: Resolver = resolve_host, file_name: str = "Dockerfile") -> None:
    """``BuildFailure`` for ``image`` on the farm's registry or an internal one (see the
    module docstring), unless it is one of the farm's own; messages name ``file_name``."""
    if farm.owns(image):
        return
    suggestion = ("Build FROM an image on a public registry (or FROM binder-root, this farm's "
                  "Debian root); operators may allow an image in BINDER_ALLOWED_BASE_IMAGES.")
    where = f"The {file_name}'s {use.how} on line {use.line} would pull {image}"
    if image.domain.lower() == farm.registry.lower():
        raise BuildFailure(
            f"{where} from this farm's registry, which holds the images of other "
            "repositories; only the farm's own base images may come from there.",
            suggestions=[suggestion])
    try:
        internal = is_internal_registry(image.domain, resolve)
    except UnknownHost:
        raise BuildFailure(
            f"{where} from {image.domain}, a registry whose name does not resolve; this farm "
            "pulls only from registries it can tell are not on its own network.",
            suggestions=[suggestion]) from None
    if internal:
        raise BuildFailure(
            f"{where} from {image.domain}, a loopback, private or link-local registry; this "
            "farm pulls from such registries only its own images.", suggestions=[suggestion])


def check_dockerfile(text: str, allowed_entries: Iterable[str],
                     build_args: Mapping[str, str] | None = None,
                     farm: FarmImages = FarmImages(),
                     resolve: Resolver = resolve_host,
                     file_name: str = "Dockerfile") -> list[ImageUse]:
    """The images building ``text`` would pull, each one allowed; else ``BuildFailure``
    (naming ``file_name``, the repository's name for the file).

    With an empty allowed list every image is allowed, but the file must
    still be one Docker can build, and an image on the farm's registry or an
    internal one must be the farm's own (:func:`check_registry`) unless an
    allowed entry covers it. ``resolve`` looks registry names up (tests stub it).
    """
    allowed = allowed_images(allowed_entries)
    try:
        uses = pulled_images(text, build_args)
    except DockerfileError as exc:
        raise BuildFailure(str(exc), suggestions=[
            f"Fix the {file_name} so that `docker build` accepts it."]) from None
    for use in uses:
        try:
            reference = parse_reference(use.image)
        except InvalidReference as exc:
            raise BuildFailure(
                f"The {file_name}'s {use.how} on line {use.line} names "
                f"{shorten(use.image)!r}, which is not an image name ({exc}).",
                suggestions=["Write a valid image name such as debian:bookworm."]) from None
        covered = any(entry.covers(reference) for entry in allowed)
        if not covered:
            check_registry(use, reference, farm, resolve, file_name)
        if allowed and not covered:
            names = ", ".join(entry.written for entry in allowed)
            raise BuildFailure(
                f"The {file_name}'s {use.how} on line {use.line} would pull {reference}, which "
                f"this farm does not allow; allowed images: {names}.",
                suggestions=["Build FROM one of the allowed images (and copy only from "
                             f"stages of your own {file_name})."])
    return uses


__all__ = ["AllowedImage", "FarmImages", "ImageReference", "InvalidReference", "allowed_images",
           "check_dockerfile", "check_registry", "is_internal_registry", "parse_reference"]
